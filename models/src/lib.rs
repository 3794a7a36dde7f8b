//! Boxoffice's data layer: the Diesel schema, row types, queries, the connection
//! pool and the embedded migrations.
//!
//! # What this crate owns
//! - `schema.rs`, generated from `migrations/` (the only source of the schema).
//! - One module per table (or small family of tables): its row types and the
//!   queries on it. Queries return [`diesel::QueryResult`], never HTTP errors.
//! - Capacity and claim queries (row locks, `SKIP LOCKED`) live next to their table.
//!
//! # What it may not import
//! Nothing of Boxoffice's other crates, and nothing of HTTP or queues: every other
//! crate depends on this one, never the reverse.

pub mod analytics;
pub mod analytics_exports;
pub mod analytics_history;
pub mod analytics_money;
pub mod analytics_series;
pub mod audit;
pub mod bookings;
pub mod checkout_limits;
pub mod coupon_reservations;
pub mod coupons;
pub mod events;
pub mod hold_batch;
pub mod holds;
pub mod ledger_audit;
pub mod listen;
pub mod migrations;
pub mod notifications;
pub mod outbox;
pub mod pool;
pub mod preferences;
pub mod prepared;
pub mod prime;
pub mod refunds;
pub mod reminders;
pub mod scheduled_job_runs;
pub mod schema;
pub mod seats_left;
pub mod sessions;
pub mod ticket_codes;
pub mod ticket_types;
pub mod tickets;
pub mod unsubscribe;
pub mod users;
pub mod venues;
pub mod waitlist;
pub mod workflow_runs;
pub mod workflow_signals;
pub mod workflow_steps;

#[cfg(feature = "testing")]
pub mod testing;

pub use pool::{DbConn, DbPool};
