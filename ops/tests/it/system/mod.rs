//! Tests with real `boxoffice` processes (see harness/processes.rs).

mod purge_once_per_tick;
mod up;
