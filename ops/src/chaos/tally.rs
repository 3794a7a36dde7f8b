//! Counters the load and the drain share: how each operation ended.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    /// One more of `operation` ending as `outcome`.
    pub fn add(&self, operation: &str, outcome: &str) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(format!("{operation}: {outcome}"))
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Operations counted, whatever their outcome.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}
