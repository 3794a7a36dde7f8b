//! Tests with real `boxoffice` processes (see harness/processes.rs).

mod checkout_race;
mod purge_once_per_tick;
mod two_replicas;
mod up;
mod fault_support;
mod worker_crashes;
mod api_crash;
mod redis_restart;
mod postgres_restart;
