//! A bounded in-process cache that Postgres's change notifications keep right.
//!
//! A value is read from Postgres and then stored; a change to its row arrives
//! later as a notification and removes it. The one race that could leave a
//! stale value behind is a notification that arrives while a read is under
//! way: the read may have seen the row before the change, and storing it after
//! the notification would keep the old row for good. So a read registers a
//! [`Fill`] first; a notification for that key (or a reset) marks every fill in
//! flight for it, and a marked fill does not store what it read.
//!
//! While the feed is not listening (before its first `LISTEN`, or after its
//! connection dropped) the map is not *live*: nothing is served from it and
//! nothing is stored, so every read goes to Postgres.
//!
//! Every entry also lives at most `ttl`, and the map holds at most `capacity`
//! entries (past that, a read is served but not stored), so a lost
//! notification cannot keep a value forever and memory stays bounded.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub struct CacheMap<K, V> {
    inner: Mutex<Inner<K, V>>,
    ttl: Duration,
    capacity: usize,
}

struct Inner<K, V> {
    live: bool,
    entries: HashMap<K, Entry<V>>,
    /// Reads in flight, per key.
    fills: HashMap<K, InFlight>,
    /// Bumped by every reset: a fill begun before it never stores.
    epoch: u64,
    last_sweep: Instant,
}

struct Entry<V> {
    value: V,
    stored_at: Instant,
}

#[derive(Default)]
struct InFlight {
    count: usize,
    /// A change to the key arrived while these reads were under way.
    changed: bool,
}

/// A read in flight: [`Fill::store`] keeps what it read unless the key changed
/// meanwhile. Dropping it without storing (an error, a cancelled request)
/// unregisters it.
pub struct Fill<'a, K: Eq + Hash + Clone, V: Clone> {
    map: &'a CacheMap<K, V>,
    key: K,
    epoch: u64,
    finished: bool,
}

/// Entries past their time are swept at most this often, and only when the
/// map is full.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl<K: Eq + Hash + Clone, V: Clone> CacheMap<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        CacheMap {
            inner: Mutex::new(Inner {
                live: false,
                entries: HashMap::new(),
                fills: HashMap::new(),
                epoch: 0,
                last_sweep: Instant::now(),
            }),
            ttl,
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored value, if the map is live and the value younger than `ttl`.
    pub fn get(&self, key: &K) -> Option<V> {
        let inner = self.lock();
        if !inner.live {
            return None;
        }
        let entry = inner.entries.get(key)?;
        (entry.stored_at.elapsed() < self.ttl).then(|| entry.value.clone())
    }

    /// Registers a read of `key` that is about to start.
    pub fn begin_fill(&self, key: K) -> Fill<'_, K, V> {
        let mut inner = self.lock();
        inner.fills.entry(key.clone()).or_default().count += 1;
        Fill {
            map: self,
            key,
            epoch: inner.epoch,
            finished: false,
        }
    }

    /// A change to `key`: its value goes, and reads in flight will not store.
    pub fn invalidate(&self, key: &K) {
        let mut inner = self.lock();
        inner.entries.remove(key);
        if let Some(fill) = inner.fills.get_mut(key) {
            fill.changed = true;
        }
    }

    /// A change to every value matching `stale` (a user's sessions, say): they
    /// go, and so does every read in flight (which may be one of them).
    pub fn invalidate_where(&self, stale: impl Fn(&V) -> bool) {
        let mut inner = self.lock();
        inner.entries.retain(|_, entry| !stale(&entry.value));
        for fill in inner.fills.values_mut() {
            fill.changed = true;
        }
    }

    /// Forgets everything; `live` says whether changes are being heard again.
    pub fn reset(&self, live: bool) {
        let mut inner = self.lock();
        inner.live = live;
        inner.entries.clear();
        inner.epoch += 1;
    }

    /// Whether changes are being heard, so values are served and stored.
    pub fn is_live(&self) -> bool {
        self.lock().live
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn finish(&self, key: &K, epoch: u64, value: Option<V>) {
        let mut inner = self.lock();
        let Some(fill) = inner.fills.get_mut(key) else {
            return;
        };
        let changed = fill.changed;
        fill.count -= 1;
        if fill.count == 0 {
            inner.fills.remove(key);
        }
        let Some(value) = value else { return };
        if changed || !inner.live || epoch != inner.epoch {
            return;
        }
        if inner.entries.len() >= self.capacity && !inner.entries.contains_key(key) {
            self.sweep(&mut inner);
            if inner.entries.len() >= self.capacity {
                return;
            }
        }
        inner.entries.insert(
            key.clone(),
            Entry {
                value,
                stored_at: Instant::now(),
            },
        );
    }

    fn sweep(&self, inner: &mut Inner<K, V>) {
        if inner.last_sweep.elapsed() < SWEEP_EVERY {
            return;
        }
        inner.last_sweep = Instant::now();
        let ttl = self.ttl;
        inner
            .entries
            .retain(|_, entry| entry.stored_at.elapsed() < ttl);
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Fill<'_, K, V> {
    /// Stores what the read found, unless the key changed since it began.
    pub fn store(mut self, value: V) {
        self.finished = true;
        self.map.finish(&self.key, self.epoch, Some(value));
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Drop for Fill<'_, K, V> {
    fn drop(&mut self) {
        if !self.finished {
            self.map.finish(&self.key, self.epoch, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_map() -> CacheMap<u32, &'static str> {
        let map = CacheMap::new(Duration::from_secs(60), 3);
        map.reset(true);
        map
    }

    fn fills_in_flight(map: &CacheMap<u32, &'static str>) -> usize {
        map.lock().fills.len()
    }

    #[test]
    fn a_map_that_is_not_live_serves_and_stores_nothing() {
        let map = CacheMap::new(Duration::from_secs(60), 3);
        map.begin_fill(1).store("one");
        assert_eq!(map.get(&1), None);
        assert!(map.is_empty());
    }

    #[test]
    fn a_read_is_stored_and_served() {
        let map = live_map();
        map.begin_fill(1).store("one");
        assert_eq!(map.get(&1), Some("one"));
        assert_eq!(fills_in_flight(&map), 0);
    }

    #[test]
    fn a_change_during_a_read_keeps_it_from_being_stored() {
        let map = live_map();
        let first = map.begin_fill(1);
        let second = map.begin_fill(1);
        map.invalidate(&1);
        first.store("before the change");
        second.store("before the change too");
        assert_eq!(map.get(&1), None);
        // A read that starts after the change is stored.
        map.begin_fill(1).store("after");
        assert_eq!(map.get(&1), Some("after"));
    }

    #[test]
    fn a_change_to_another_key_does_not_stop_a_read() {
        let map = live_map();
        let fill = map.begin_fill(1);
        map.invalidate(&2);
        fill.store("one");
        assert_eq!(map.get(&1), Some("one"));
    }

    #[test]
    fn a_change_removes_a_stored_value() {
        let map = live_map();
        map.begin_fill(1).store("one");
        map.invalidate(&1);
        assert_eq!(map.get(&1), None);
    }

    #[test]
    fn a_reset_during_a_read_keeps_it_from_being_stored() {
        let map = live_map();
        map.begin_fill(1).store("one");
        let fill = map.begin_fill(2);
        map.reset(true);
        assert_eq!(map.get(&1), None, "a reset forgets what was stored");
        fill.store("two");
        assert_eq!(map.get(&2), None);
    }

    #[test]
    fn a_dropped_read_is_unregistered() {
        let map = live_map();
        drop(map.begin_fill(1));
        assert_eq!(fills_in_flight(&map), 0);
    }

    #[test]
    fn invalidate_where_removes_matches_and_stops_every_read_in_flight() {
        let map = live_map();
        map.begin_fill(1).store("a");
        map.begin_fill(2).store("b");
        let fill = map.begin_fill(3);
        map.invalidate_where(|v| *v == "a");
        assert_eq!(map.get(&1), None);
        assert_eq!(map.get(&2), Some("b"));
        fill.store("a");
        assert_eq!(map.get(&3), None);
    }

    #[test]
    fn a_full_map_serves_but_does_not_store() {
        let map = live_map();
        for key in 1..=4 {
            map.begin_fill(key).store("v");
        }
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(&4), None);
        // A key already there may still be replaced.
        map.begin_fill(1).store("new");
        assert_eq!(map.get(&1), Some("new"));
    }

    #[test]
    fn an_old_entry_is_not_served() {
        let map = CacheMap::new(Duration::ZERO, 3);
        map.reset(true);
        map.begin_fill(1).store("one");
        assert_eq!(map.get(&1), None);
    }
}
