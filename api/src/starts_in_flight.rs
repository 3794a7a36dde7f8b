//! The checkout starts an API process has taken in and not answered yet, and
//! a wait for a flood of them to pass.
//!
//! In a flash sale the machine's cores are shared by the batches that decide
//! the buyers' starts (seats held, or sold out) and by what the winners'
//! first steps issued next: their payment intents, each a call to the
//! provider and a step's transaction. Run at once, the intents of the first
//! batches' winners slowed the batches that decided everyone after them (at
//! 2,000 buyers for 500 seats, the batch holding the last seats took 215 ms
//! instead of 124 ms). So while more starts wait than one batch writes, the
//! intents wait: every buyer learns the decision first, and a winner's
//! payment form is ready a moment later, well within the hold. A smaller
//! wave is never held up: its next batch answers all of it.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::routes::checkouts::gathered::MAX_BATCH;

/// More starts in flight than this are a flood: more than one batch writes.
pub const FLOOD: usize = MAX_BATCH;

/// The count of starts in flight; clones share it.
#[derive(Clone)]
pub struct StartsInFlight(Arc<watch::Sender<usize>>);

impl Default for StartsInFlight {
    fn default() -> Self {
        StartsInFlight(Arc::new(watch::Sender::new(0)))
    }
}

/// A start counted in flight until dropped (answered, or given up).
pub struct Entered(Arc<watch::Sender<usize>>);

impl Drop for Entered {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl StartsInFlight {
    /// Counts one start in flight, until the returned guard is dropped.
    pub fn enter(&self) -> Entered {
        self.0.send_modify(|n| *n += 1);
        Entered(self.0.clone())
    }

    /// How many starts are in flight now.
    pub fn count(&self) -> usize {
        *self.0.borrow()
    }

    /// Waits while the starts in flight are a flood ([`FLOOD`]), but not past
    /// `deadline`. True when the flood has passed (or there was none).
    pub async fn flood_passed_by(&self, deadline: Instant) -> bool {
        self.at_most_by(FLOOD, deadline).await
    }

    /// Waits until at most `most` are counted, but not past `deadline`. True
    /// when they were.
    pub async fn at_most_by(&self, most: usize, deadline: Instant) -> bool {
        let mut count = self.0.subscribe();
        let down = count.wait_for(|&n| n <= most);
        // The sender lives as long as `self`: the wait never fails.
        matches!(tokio::time::timeout_at(deadline, down).await, Ok(Ok(_)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn flood(in_flight: &StartsInFlight) -> Vec<Entered> {
        (0..=FLOOD).map(|_| in_flight.enter()).collect()
    }

    #[tokio::test]
    async fn a_wave_no_larger_than_a_batch_holds_nothing_up() {
        let in_flight = StartsInFlight::default();
        let wave: Vec<Entered> = (0..FLOOD).map(|_| in_flight.enter()).collect();
        assert_eq!(in_flight.count(), FLOOD);
        let deadline = Instant::now() + Duration::from_secs(10);
        let passed = tokio::time::timeout(
            Duration::from_millis(500),
            in_flight.flood_passed_by(deadline),
        )
        .await;
        assert_eq!(passed.ok(), Some(true), "no flood, no wait");
        drop(wave);
        assert_eq!(in_flight.count(), 0);
    }

    #[tokio::test]
    async fn the_wait_ends_once_the_flood_has_passed() {
        let in_flight = StartsInFlight::default();
        let mut starts = flood(&in_flight);
        let waiting = in_flight.clone();
        let waiter = tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            waiting.flood_passed_by(deadline).await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "a flood holds the waiter");
        // Answered one by one (from another task, as the batches answer):
        // one answer brings the flood down to a batch.
        let answering = tokio::spawn(async move {
            starts.pop();
            starts
        });
        let passed = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter ends once the flood has passed")
            .unwrap();
        assert!(passed);
        assert_eq!(in_flight.count(), FLOOD);
        drop(answering.await.unwrap());
        assert_eq!(in_flight.count(), 0);
    }

    #[tokio::test]
    async fn a_flood_that_lasts_holds_the_waiter_only_to_its_deadline() {
        let in_flight = StartsInFlight::default();
        let _starts = flood(&in_flight);
        let began = Instant::now();
        let passed = in_flight
            .flood_passed_by(began + Duration::from_millis(200))
            .await;
        assert!(!passed, "the flood had not passed");
        let waited = began.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(5),
            "waited {waited:?}"
        );
    }
}
