//! The checkout workflow end to end: HTTP → run → workers → tickets and email.

pub mod fixtures;

mod bad_input;
mod cancel;
mod confirmation_reads;
mod contract;
mod first_intent;
mod first_step;
mod free_and_coupon;
mod gathered;
mod hold_batches;
mod hot_path;
mod late_coupon;
mod limits;
mod paid;
mod payment_checks;
mod prepared_statements;
mod reused_key_in_batch;
mod run_moves;
mod runs_inserted;
mod sale_terms;
mod signals;
mod taken_in;
