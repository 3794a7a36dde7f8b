//! Boxoffice's cron schedules: what runs when.
//!
//! # Concepts
//! A schedule never does work itself: on each tick it enqueues one job, with the
//! idempotency key `"<job>:<tick timestamp>"`. apalis-cron fires in every worker
//! process (it is a local timer, with no leader election); the key makes the
//! queue accept the job once per tick however many processes fire it, and the
//! jobs are idempotent on their own besides.
//!
//! # What it may not import
//! `api` or `ops`. It knows the job types of `workers`, nothing of their insides.

mod runner;
mod tick_job;

pub use runner::{ScheduleSetup, run_all};
