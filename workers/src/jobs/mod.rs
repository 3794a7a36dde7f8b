//! One module per job kind.

pub mod purge_sessions;
