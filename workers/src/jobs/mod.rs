//! One module per job kind. Jobs must be idempotent: Redis delivers at least
//! once, and a crashed worker's jobs are delivered again.

pub mod advance_run;
pub mod purge_sessions;
pub mod run_effect;
pub mod send_email;
pub mod sweep_runs;
