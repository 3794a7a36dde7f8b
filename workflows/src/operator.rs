//! What the operator's tools show and take (`boxoffice dlq|runs|queues` and
//! `/v1/ops`): plain data, shared by the workers (which compute it) and the
//! API (which serves it) without either importing the other.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A dead-lettered apalis job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadJob {
    /// The apalis task id.
    pub id: String,
    /// The job's queue (job name, e.g. `advance_run`).
    pub queue: String,
    pub run_id: Option<Uuid>,
    /// The run's step when it was parked (engine jobs).
    pub step: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// apalis's status of the task (`Killed` when aborted, `Failed` after 25 attempts).
    pub status: Option<String>,
    pub dead_at: Option<DateTime<Utc>>,
    pub age_secs: Option<i64>,
    /// The job's arguments as queued.
    pub args: serde_json::Value,
}

/// The fate of a run whose dead job is discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Undo what the run did and end it (the workflow's cancel).
    Compensate,
    /// Leave it `failed` for good.
    Fail,
}

/// Who acts, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user_id: Option<Uuid>,
    pub request_id: Option<String>,
    /// `cli` or `api`.
    pub via: &'static str,
}

/// What an operator action did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionOutcome {
    pub action: String,
    pub run_id: Option<Uuid>,
    /// The run's status afterwards.
    pub run_status: Option<String>,
    /// The dead jobs it concerned (retry --all may touch several).
    pub jobs: Vec<String>,
    pub detail: String,
}

/// One queue as the operator sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueStats {
    pub queue: String,
    /// Ready to run now.
    pub ready: u64,
    /// Delayed (timers, apalis's own retries).
    pub scheduled: u64,
    /// Fetched by a live worker and not acknowledged yet.
    pub in_flight: u64,
    pub dead: u64,
    /// Jobs done since the queue was created (throughput is its change).
    pub done_total: u64,
    /// Messages in the Postgres outbox for this queue, due or not.
    pub outbox_backlog: i64,
    /// Age of the oldest due outbox message: how far the relay is behind.
    pub relay_lag_secs: Option<f64>,
}

/// A circuit breaker's state as one worker process last reported it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BreakerReport {
    pub process: String,
    pub dependency: String,
    pub state: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuesReport {
    pub queues: Vec<QueueStats>,
    pub breakers: Vec<BreakerReport>,
    pub runs_by_status: BTreeMap<String, i64>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub step: String,
    pub version: i32,
    pub attempts: i32,
    pub last_error: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepView {
    pub step: String,
    pub attempt: i32,
    pub input: String,
    pub outcome: String,
    pub error: Option<String>,
    pub version: i32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignalView {
    pub name: String,
    pub dedupe_key: String,
    pub payload: serde_json::Value,
    pub received_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
}

/// A run with its full history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunSummary,
    pub state: serde_json::Value,
    pub pending_effect: Option<serde_json::Value>,
    pub wake_at: Option<DateTime<Utc>>,
    pub steps: Vec<StepView>,
    pub signals: Vec<SignalView>,
    /// Its jobs in the dead letters.
    pub dead_jobs: Vec<DeadJob>,
}

/// Why an operator action was refused.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The action does not apply in the current state.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// Anything else (database, Redis), with its cause chain.
    #[error("{0}")]
    Other(String),
}
