//! The workflow engine's executor: the commit protocol (DESIGN.md §3).
//!
//! One transaction per advance: lock the run row, feed the input to the
//! workflow, apply local commands (their outcomes are fed straight back), write
//! the new state, the history and the outbox messages, commit. Remote commands
//! and timers leave through the outbox; nothing is pushed to Redis inside the
//! transaction. A duplicate or stale message finds nothing to do: the workflow
//! ignores inputs that do not fit its state.

pub mod executor;
pub mod local_effects;
pub mod messages;
pub mod parking;

pub use executor::{Advanced, Trigger, advance};
