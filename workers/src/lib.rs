//! Boxoffice's apalis workers: the jobs that run workflow steps and maintenance,
//! and the adapters for outside services (payment provider, mailer).
//!
//! # Concepts
//! - A **job** is one file in `jobs/`: its argument type (serialised into Redis),
//!   its stable queue name and its handler. Jobs must be idempotent: Redis delivers
//!   at least once, and a crashed worker's jobs are delivered again.
//! - The **registry** (`registry.rs`) is the one list of every job kind this
//!   process runs.
//! - The **supervisor** (`supervisor.rs`) restarts a worker that stopped (Redis
//!   went away, the worker errored) with backoff and a fresh worker name, because
//!   apalis-redis refuses a restarted worker under its old name for a while.
//!
//! # What it may not import
//! `api`, `ops` or `schedules`. Postgres is reached through `models`, the
//! workflow rules through `workflows`.

pub mod adapters;
pub mod deps;
pub mod engine;
pub mod jobs;
pub mod kinds;
pub mod mail;
pub mod operator;
pub mod outbox_listener;
pub mod queue;
pub mod registry;
pub mod relay;
pub mod supervisor;
pub mod wake;

pub use deps::JobDeps;
