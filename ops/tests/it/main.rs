//! Boxoffice's integration tests: one test binary (linked once), one module per
//! area. Every test gets its own database (cloned from a migrated template) and
//! its own Redis key prefix, so tests run in parallel against the Postgres and
//! Redis that `ops/scripts/test` starts.
//!
//! `system::*` tests start real `boxoffice` processes.

mod harness;

mod admin;
mod analytics;
mod auth;
mod bad_input_identity;
mod catalog_bad_input;
mod catalog_cache;
mod catalog_concurrency;
mod catalog_constraints;
mod catalog_fixtures;
mod catalog_if_match;
mod catalog_lifecycle;
mod catalog_openapi;
mod catalog_ownership;
mod catalog_search;
mod change_feed;
mod checkout;
mod cleanup;
mod db_limits;
/// Checkout fixtures shared with the system tests.
use checkout::fixtures as checkout_support;
mod email;
mod engine_registry;
mod forwarded_for;
mod http2_proxy;
mod http_basics;
mod idempotency_key;
mod ledger_audit;
mod login_lockout;
mod mail_content;
mod mail_unsubscribe;
mod notifications_list;
mod openapi_fuzz;
mod ops_tools;
mod outbox_listener;
mod refunds;
mod relay_pool;
mod reminders;
mod sandbox;
mod session_reads;
mod system;
mod test_databases;
mod tickets;
mod waitlist;
mod webhooks;
