//! Wakes this process's idle workers of a queue when the relay has just put
//! jobs into it.
//!
//! apalis-redis looks for work only when a worker's poll strategy says so: an
//! idle worker waits for its interval (`queue::POLL_INTERVAL`), and every hop
//! of a run through Redis paid half of it on average. The relay of the same
//! process knows the moment it pushed; it wakes the queue's workers, which
//! fetch at once. Jobs pushed by another process's relay are still found by
//! the interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc;

/// One stream per worker; a wake that finds the worker already woken is
/// dropped (the worker's next fetch sees every job anyway).
#[derive(Clone, Default)]
pub struct WorkerWake {
    queues: Arc<Mutex<Subscribers>>,
}

/// Per queue, the wake streams of its workers.
type Subscribers = HashMap<&'static str, Vec<mpsc::Sender<()>>>;

impl WorkerWake {
    /// A stream that yields when jobs were pushed to `queue`; for one worker's
    /// poll strategy. It ends nothing when dropped: the sender goes at the
    /// next wake.
    pub fn subscribe(&self, queue: &'static str) -> mpsc::Receiver<()> {
        let (sender, receiver) = mpsc::channel(0);
        self.lock().entry(queue).or_default().push(sender);
        receiver
    }

    /// Jobs were pushed to `queue`.
    pub fn wake(&self, queue: &str) {
        if let Some(senders) = self.lock().get_mut(queue) {
            senders.retain_mut(|sender| match sender.try_send(()) {
                Ok(()) => true,
                Err(e) => !e.is_disconnected(),
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Subscribers> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_wake_reaches_every_worker_of_its_queue_once() {
        let wake = WorkerWake::default();
        let mut first = wake.subscribe("advance_run");
        let mut second = wake.subscribe("advance_run");
        let mut other = wake.subscribe("send_email");
        wake.wake("advance_run");
        wake.wake("advance_run");
        assert_eq!(first.next().await, Some(()));
        assert_eq!(second.next().await, Some(()));
        // Two wakes before the worker looked make one.
        assert!(first.try_recv().is_err(), "no second wake is pending");
        assert!(other.try_recv().is_err(), "another queue is not woken");
    }

    #[tokio::test]
    async fn a_gone_worker_is_forgotten() {
        let wake = WorkerWake::default();
        drop(wake.subscribe("advance_run"));
        let mut live = wake.subscribe("advance_run");
        wake.wake("advance_run");
        assert_eq!(wake.lock()["advance_run"].len(), 1);
        assert_eq!(live.next().await, Some(()));
    }
}
