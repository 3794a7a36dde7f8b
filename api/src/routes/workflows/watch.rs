//! Where long polls wait: the waiters of a run wake when it moves past the
//! version they have. Postgres says when a run changed, and to which version
//! (the change feed hands both over, [`RunWatcher::run_changed`]), so a
//! change heard costs no read. One task per API process reads the versions
//! of watched runs, in one query, when a notification names no version, when
//! a new waiter's run may have changed before it was watched, and, for every
//! watched run, every [`BACKSTOP_LOOK`] (or every [`LOOK_EVERY`] while the
//! change feed is not listening). A flash sale's thousands of waiting buyers
//! then cost the database about one read a second.
//!
//! When the process stops, every long poll answers at once with what it has
//! ([`RunWatcher::end_waits`]): a stop waits for open requests, and polls
//! waiting up to 30 s would hold it past the time a process manager gives it.
//! The clients poll again, on a process that stays.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use boxoffice_models::{DbPool, workflow_runs};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often every watched run is read while changes are not heard: the most
/// a long poll then answers late.
const LOOK_EVERY: Duration = Duration::from_millis(20);
/// How often every watched run is read while changes are heard (a backstop).
const BACKSTOP_LOOK: Duration = Duration::from_secs(1);
/// With nobody waiting, the task sleeps until a waiter comes (or this passes,
/// to notice that the API is gone).
const IDLE_CHECK: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct RunWatcher {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    runs: Mutex<HashMap<Uuid, Watched>>,
    /// A first waiter arrived.
    waiting: Notify,
    /// Watched runs to read at once: Postgres said they changed, or a waiter
    /// just came (the run may have changed before it was watched).
    to_read: Mutex<HashSet<Uuid>>,
    /// `to_read` got an id.
    read_now: Notify,
    /// The change feed is listening, so changes are heard.
    hearing: AtomicBool,
    /// The process is stopping: nobody waits any more.
    ended: CancellationToken,
}

struct Watched {
    /// The latest version read (versions only grow).
    version: watch::Sender<i32>,
    waiters: usize,
}

impl RunWatcher {
    /// Starts the watching task; it ends when the last clone is dropped.
    pub fn start(db: DbPool) -> Self {
        let shared = Arc::new(Shared::default());
        tokio::spawn(look_until_dropped(Arc::downgrade(&shared), db));
        RunWatcher { shared }
    }

    /// Waits until run `run_id` is past `version`, or `deadline`, or the
    /// process stops. Returns whether it moved.
    ///
    /// `still_current` is asked once the waiter is registered: whether what
    /// the caller knows is still the run's latest as far as this process
    /// heard (its view kept in memory at `version`). A change heard from then
    /// on reaches the waiter; one heard before dropped that view, so `false`
    /// has the run read at once, as does a view never kept.
    pub async fn wait_past(
        &self,
        run_id: Uuid,
        version: i32,
        deadline: Instant,
        still_current: impl FnOnce() -> bool,
    ) -> bool {
        if self.shared.ended.is_cancelled() {
            return false;
        }
        let mut seen = {
            let mut runs = self.shared.runs.lock().unwrap_or_else(|e| e.into_inner());
            let watched = runs.entry(run_id).or_insert_with(|| Watched {
                version: watch::channel(version).0,
                waiters: 0,
            });
            watched.waiters += 1;
            watched.version.subscribe()
        };
        let _leave = Leave {
            shared: &self.shared,
            run_id,
        };
        self.shared.waiting.notify_one();
        if !still_current() {
            self.read_soon(run_id);
        }
        tokio::select! {
            moved = tokio::time::timeout_at(deadline, seen.wait_for(|v| *v > version)) => {
                moved.is_ok_and(|r| r.is_ok())
            }
            () = self.shared.ended.cancelled() => false,
        }
    }

    /// The process is stopping: every long poll answers now, and new ones do
    /// not wait.
    pub fn end_waits(&self) {
        self.shared.ended.cancel();
    }
}

impl RunWatcher {
    /// Postgres said run `run_id` changed, to `version` when it said so: its
    /// waiters past that version wake at once; with no version, the run is
    /// read.
    pub fn run_changed(&self, run_id: Uuid, version: Option<i32>) {
        let runs = self.shared.runs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(watched) = runs.get(&run_id) else {
            return;
        };
        match version {
            Some(version) => {
                watched
                    .version
                    .send_if_modified(|seen| moved_to(seen, version));
            }
            None => {
                drop(runs);
                self.read_soon(run_id);
            }
        }
    }

    /// Whether changes are being heard; while not, every watched run is read
    /// every [`LOOK_EVERY`].
    pub fn set_hearing(&self, hearing: bool) {
        self.shared.hearing.store(hearing, Ordering::Relaxed);
        self.shared.read_now.notify_one();
    }

    fn read_soon(&self, run_id: Uuid) {
        if let Ok(mut to_read) = self.shared.to_read.lock() {
            to_read.insert(run_id);
        }
        self.shared.read_now.notify_one();
    }
}

/// Unregisters a waiter, however its request ends (answered, timed out, or
/// the client went away).
struct Leave<'a> {
    shared: &'a Shared,
    run_id: Uuid,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut runs = self.shared.runs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(watched) = runs.get_mut(&self.run_id) {
            watched.waiters -= 1;
            if watched.waiters == 0 {
                runs.remove(&self.run_id);
            }
        }
    }
}

async fn look_until_dropped(shared: Weak<Shared>, db: DbPool) {
    let mut last_full_look = Instant::now();
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let watched: Vec<Uuid> = strong
            .runs
            .lock()
            .map(|runs| runs.keys().copied().collect())
            .unwrap_or_default();
        if watched.is_empty() {
            // Keeps the watcher alive at most IDLE_CHECK after its last user.
            let _ = tokio::time::timeout(IDLE_CHECK, strong.waiting.notified()).await;
            continue;
        }
        let every = if strong.hearing.load(Ordering::Relaxed) {
            BACKSTOP_LOOK
        } else {
            LOOK_EVERY
        };
        let to_read: Vec<Uuid> = strong
            .to_read
            .lock()
            .map(|mut ids| ids.drain().collect())
            .unwrap_or_default();
        let ids = if last_full_look.elapsed() >= every {
            last_full_look = Instant::now();
            watched
        } else {
            to_read
        };
        if !ids.is_empty() {
            match read_versions(&db, &ids).await {
                Ok(versions) => {
                    let runs = strong.runs.lock().unwrap_or_else(|e| e.into_inner());
                    for (id, version) in versions {
                        if let Some(watched) = runs.get(&id) {
                            watched
                                .version
                                .send_if_modified(|seen| moved_to(seen, version));
                        }
                    }
                }
                // The waiters time out and answer 304; the next full look
                // tries again.
                Err(e) => tracing::debug!(error = %e, "reading watched run versions failed"),
            }
        }
        // Keeps the watcher alive at most `every` after its last user.
        let _ = tokio::time::timeout_at(last_full_look + every, strong.read_now.notified()).await;
    }
}

/// Records `version` as the latest seen if it is newer (versions only grow);
/// whether it was.
fn moved_to(seen: &mut i32, version: i32) -> bool {
    let moved = version > *seen;
    if moved {
        *seen = version;
    }
    moved
}

async fn read_versions(db: &DbPool, ids: &[Uuid]) -> anyhow::Result<Vec<(Uuid, i32)>> {
    let mut conn = db.get().await?;
    Ok(workflow_runs::versions(&mut conn, ids).await?)
}
