//! What an advance of a run takes and gives: the trigger that made the
//! engine look at the run, and what came of it (with a remote command for the
//! caller to carry out at once, when it asked for one).

use anyhow::Context;
use boxoffice_workflows::engine::{Input, InputOf, Workflow};

use super::messages::RunEffect;

/// What made us look at the run.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// Look at the run: start it, deliver pending signals, fire a due timer.
    /// Harmless when there is nothing to do (duplicates, sweeps).
    Poke,
    /// A remote command's result (or its final failure), or a cancel.
    Input(EngineInput),
    /// An operator's input (cancel, retry). Unlike every other trigger it also
    /// reaches a run parked by a poison job (see `parking`): if the workflow
    /// accepts it, the run resumes from the status it had.
    Operator(EngineInput),
}

/// The inputs the engine itself gives any kind (no command outcomes): the
/// kind-independent part of [`Input`].
#[derive(Debug, Clone, PartialEq)]
pub enum EngineInput {
    /// A remote command's outcome, as stored (the kind's `RemoteOutcome`).
    RemoteDone {
        key: String,
        outcome: serde_json::Value,
    },
    /// `error` is the stable code the workflow gets; `detail` the outside
    /// system's own words, kept in the run's history for operators.
    RemoteFailed {
        key: String,
        error: String,
        detail: String,
    },
    Cancel,
    Retry,
}

impl EngineInput {
    /// The kind's own input; `Err` when a remote outcome does not decode.
    pub(super) fn typed<W: Workflow>(self) -> anyhow::Result<InputOf<W>> {
        Ok(match self {
            EngineInput::RemoteDone { key, outcome } => Input::RemoteDone {
                key,
                outcome: serde_json::from_value(outcome).context("decoding a remote outcome")?,
            },
            EngineInput::RemoteFailed { key, error, .. } => Input::RemoteFailed { key, error },
            EngineInput::Cancel => Input::Cancel,
            EngineInput::Retry => Input::Retry,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Advanced {
    /// The run exists.
    pub found: bool,
    /// The run moved (its version changed).
    pub changed: bool,
    /// Messages were written to the outbox.
    pub queued: bool,
    pub status: Option<String>,
    /// The step the run is at, when it moved.
    pub step: Option<String>,
    /// What the run's owner sees of it now (its status view), when it moved.
    pub view: Option<serde_json::Value>,
    /// The run's version (its ETag's) after the move, when it moved.
    pub version: Option<i32>,
    /// The remote command the run issued, for the caller to carry out at once
    /// ([`Dispatch::Inline`]).
    pub issued: Option<Issued>,
}

/// How a remote command issued by the run leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    /// Through the outbox, due at once: a worker of the effect queue takes it.
    Queue,
    /// The calling job carries it out right after the commit, which saves a
    /// trip through the outbox, Redis and a worker between two steps. The
    /// outbox still gets the message, due only after [`INLINE_GRACE`]: if the
    /// job dies before it is done, the message is the backstop (and a late
    /// duplicate is harmless, like every redelivery).
    Inline,
}

/// How long an inline command's backstop message waits before it is relayed:
/// longer than a provider call may take (its timeout), so it is deleted unused
/// in the normal case.
pub const INLINE_GRACE: chrono::Duration = chrono::Duration::seconds(20);

/// A remote command to carry out now, and its backstop message in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Issued {
    pub effect: RunEffect,
    pub backstop_id: i64,
}

impl Dispatch {
    /// How a command written with its message `backstop_id` leaves: whether
    /// the outbox takes it (messages queued), or the command handed to the
    /// caller.
    pub(super) fn of(
        self,
        effect: Option<RunEffect>,
        backstop_id: Option<i64>,
    ) -> (bool, Option<Issued>) {
        match (effect, backstop_id, self) {
            (Some(_), Some(_), Dispatch::Queue) => (true, None),
            (Some(effect), Some(backstop_id), Dispatch::Inline) => (
                false,
                Some(Issued {
                    effect,
                    backstop_id,
                }),
            ),
            _ => (false, None),
        }
    }
}
