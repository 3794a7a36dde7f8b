//! Tests with real `boxoffice` processes (see harness/processes.rs).

mod api_crash;
mod api_stop;
mod backlog;
mod bench_smoke;
mod cancellation_chaos;
mod chaos_soak;
mod checkout_race;
mod cleanup_under_load;
mod cli;
mod dlq_tools;
mod fault_support;
pub(crate) mod poison;
mod postgres_restart;
mod provider_outage;
mod purge_once_per_tick;
mod queues_report;
mod readme_walkthrough;
mod redis_restart;
mod reminders_chaos;
mod reminders_downtime;
mod runs_retry;
mod two_replicas;
mod up;
mod waitlist_crash;
mod warm_pool;
mod work_metrics;
mod worker_crashes;
