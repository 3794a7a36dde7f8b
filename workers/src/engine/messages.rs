//! The engine's messages (outbox → Redis → workers).

use boxoffice_workflows::engine::RemoteCommand;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use boxoffice_models::workflow_signals::{ADVANCE_QUEUE, AdvanceRun};

/// The queue of remote commands.
pub const EFFECT_QUEUE: &str = "run_effect";

/// Carry out one remote command of a run; `attempt` counts from 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEffect {
    pub run_id: Uuid,
    pub command: RemoteCommand,
    pub attempt: u32,
}
