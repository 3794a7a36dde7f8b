//! The checkout workflow end to end: HTTP → run → workers → tickets and email.

pub mod fixtures;

mod bad_input;
mod contract;
mod free_and_coupon;
mod hot_path;
mod paid;
mod signals;
