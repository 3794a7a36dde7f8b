//! Delivering a webhook's signal in the API process that stored it, as the
//! API sees it: a trait object in [`crate::AppState`]. The implementation is
//! the workers' engine (wired by `ops`), so the API keeps its layering.
//!
//! A stored signal used to reach its run through the outbox, the relay,
//! Redis and a worker's job: a paid checkout's confirmation waited for that
//! trip and paid for it (an outbox row written, read and deleted, a job's
//! Redis commands). Delivered here, right after the webhook's commit, the
//! run takes the step at once. The delivery message is still written with
//! the signal, due only after the implementation's grace: the backstop for a
//! process that dies or fails before the step, deleted by the step's own
//! transaction when it is taken.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::first_steps::Finishing;

pub trait SignalDelivery: Send + Sync {
    /// When the delivery message of a signal stored now comes due, for a
    /// worker to deliver it if this process did not.
    fn backstop_due(&self) -> DateTime<Utc>;

    /// Delivers the signals pending for `run_id`, after the commit that
    /// stored one with the delivery message `backstop_id`: not awaited by
    /// the webhook's answer. A delivery that fails leaves the run to the
    /// workers.
    fn deliver(&self, run_id: Uuid, backstop_id: i64);

    /// Called once the process has stopped taking requests, before it exits:
    /// waits, within a bound, for the deliveries under way.
    fn finish(&self) -> Finishing<'_>;
}
