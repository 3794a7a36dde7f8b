//! The operator's tools, in one place for the CLI (`boxoffice dlq|runs|queues`)
//! and the admin API (`/v1/ops`, through a trait object the `ops` crate builds
//! from [`Operator`]): dead letters, runs, queue health.
//!
//! Every action (retry, discard, cancel) is written to the audit log in the
//! transaction of the change it makes.
//!
//! apalis-redis's own inspection calls are unreliable (STACK.md item 8), so dead
//! letters are read with raw Redis commands on apalis-redis 1.0's keys:
//! `{queue}:dead` (a set of task ids), `{queue}:data` (id → JSON args) and
//! `{queue}:meta:{id}` (attempts, status, `result` = `{"Err": "..."}`, `done_at`).

pub mod breakers;
pub mod dead_letters;
pub mod queues;
pub mod runs;

use boxoffice_models::DbPool;
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_workflows::operator::OperatorError;
use redis::aio::ConnectionManager;

/// What the operator's tools need.
#[derive(Clone)]
pub struct Operator {
    pub db: DbPool,
    pub redis: ConnectionManager,
    /// The deployment's Redis prefix.
    pub prefix: String,
    /// Local effects of a compensation (releasing holds) run in this process.
    pub ticket_signer: std::sync::Arc<TicketSigner>,
}

pub(crate) fn other(e: impl std::fmt::Display) -> OperatorError {
    OperatorError::Other(e.to_string())
}

pub(crate) fn other_chain(e: anyhow::Error) -> OperatorError {
    OperatorError::Other(format!("{e:#}"))
}

/// An advance an operator asked for failed. A run whose state does not decode
/// cannot be moved by anyone until its cause is fixed: the operator is told so
/// (409), rather than shown a server error.
pub(crate) fn advance_error(run_id: uuid::Uuid, e: anyhow::Error) -> OperatorError {
    if e.chain().any(|cause| cause.is::<serde_json::Error>()) {
        return OperatorError::Conflict(format!(
            "run {run_id} cannot be moved: {e:#}; fix the cause first, or discard its dead job with fate fail"
        ));
    }
    other_chain(e)
}

/// The error type of operator transactions (diesel needs `From<diesel::result::Error>`).
pub(crate) struct Tx(pub OperatorError);

impl From<diesel::result::Error> for Tx {
    fn from(e: diesel::result::Error) -> Self {
        Tx(other(e))
    }
}

impl From<OperatorError> for Tx {
    fn from(e: OperatorError) -> Self {
        Tx(e)
    }
}
