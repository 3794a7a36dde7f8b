//! What a batch of checkout starts says on its debug line
//! (`--processes-log 'warn,boxoffice_api::routes::checkouts=debug'`): where
//! the flood stood as it began, and how long each part of its transaction
//! took.

use std::time::Instant;

/// Where the flood stood as a batch began, for its debug line.
pub struct Behind {
    /// Starts added while waiting for those on their way.
    pub gathered: usize,
    /// How long that wait took.
    pub gathered_ms: f64,
    /// Starts with the writer, left for the next batches.
    pub queued: usize,
    /// Starts taken in and still on their way here.
    pub on_their_way: usize,
    /// Starts taken in and not answered, this batch's included.
    pub in_flight: usize,
}

/// The time each part of a batch's transaction took, its commit last, for
/// its debug line.
pub struct Phases {
    last: Instant,
    took: Vec<(&'static str, f64)>,
}

impl Phases {
    pub fn begin() -> Self {
        Phases {
            last: Instant::now(),
            took: Vec::new(),
        }
    }

    pub fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.took
            .push((name, (now - self.last).as_secs_f64() * 1e3));
        self.last = now;
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, ms)) in self.took.iter().enumerate() {
            let gap = if i == 0 { "" } else { " " };
            write!(f, "{gap}{name}={ms:.1}")?;
        }
        Ok(())
    }
}
