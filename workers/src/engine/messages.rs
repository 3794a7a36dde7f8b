//! The engine's messages (outbox → Redis → workers).

use boxoffice_models::workflow_runs::Run;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use boxoffice_models::workflow_signals::{ADVANCE_QUEUE, AdvanceRun};

/// The queue of remote commands.
pub const EFFECT_QUEUE: &str = "run_effect";

/// The signal that tells a parent run that one of its children ended. The
/// engine turns it into the parent's `Input::ChildEnded`.
pub const CHILD_ENDED_SIGNAL: &str = "engine.child_ended";

/// Carry out one remote command of a run; `attempt` counts from 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEffect {
    pub run_id: Uuid,
    /// The run's kind, which knows how to carry the command out.
    pub kind: String,
    /// The command's key within the run (its idempotency key at the provider
    /// derives from it).
    pub key: String,
    /// The kind's remote command, as the run stores it in `pending_effect`.
    pub command: serde_json::Value,
    pub attempt: u32,
}

impl RunEffect {
    /// The message that carries out the remote command the run waits on, if
    /// any (to re-send it after its message was lost, or on an operator's retry).
    pub fn pending_of(run: &Run) -> anyhow::Result<Option<RunEffect>> {
        let Some(command) = run.pending_effect.clone() else {
            return Ok(None);
        };
        let (key, _) = crate::kinds::of(&run.kind)?.remote_names(&command)?;
        Ok(Some(RunEffect {
            run_id: run.id,
            kind: run.kind.clone(),
            key,
            command,
            attempt: run.attempts as u32 + 1,
        }))
    }
}
