//! Boxoffice's integration tests: one test binary (linked once), one module per
//! area. Every test gets its own database (cloned from a migrated template) and
//! its own Redis key prefix, so tests run in parallel against the Postgres and
//! Redis that `ops/scripts/test` starts.
//!
//! `system::*` tests start real `boxoffice` processes.

mod harness;

mod http_basics;
mod system;
