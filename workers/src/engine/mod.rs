//! The workflow engine's executor: the commit protocol (DESIGN.md §3).
//!
//! One transaction per advance: lock the run row, feed the input to the
//! workflow, apply local commands (their outcomes are fed straight back), write
//! the new state, the history and the outbox messages, commit. Remote commands
//! and timers leave through the outbox; nothing is pushed to Redis inside the
//! transaction. Two exceptions keep hot paths short: a hold is taken just
//! before the transaction, on its own (`ahead`: a hot ticket type's row lock
//! must not last a whole step), together with the other holds of the same type
//! in this process (`hold_batcher`), and a job that issues a remote command may
//! carry it out right after its commit (`Dispatch::Inline`, through
//! `remote_calls`; the outbox keeps a delayed copy as the backstop), and the
//! process that starts a run may take its first step itself (`first_step`, with
//! a delayed start message as the backstop) and carry out the command it
//! issues. Inside the transaction, the advance's own writes (history,
//! transition, outbox messages) go out together (`step_writes`). A duplicate
//! or stale message finds nothing to do: the workflow ignores inputs that do
//! not fit its state.

pub mod advance_io;
pub mod ahead;
mod children;
pub mod executor;
pub mod first_step;
pub mod hold_batcher;
pub mod messages;
pub mod parking;
pub mod remote_calls;
pub mod resend;
mod step_writes;

pub use advance_io::{Advanced, Dispatch, EngineInput, Issued, Trigger};
pub use executor::{advance, advance_holding, advance_past_start};
pub use hold_batcher::HoldBatcher;
pub use remote_calls::RemoteCalls;
