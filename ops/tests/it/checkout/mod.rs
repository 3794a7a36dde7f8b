//! The checkout workflow end to end: HTTP → run → workers → tickets and email.

mod fixtures;

mod free_and_coupon;
mod paid;
