//! Adapters for outside services, each behind a trait of ours so that a
//! workflow step depends on what it needs (create an intent, send a mail), not
//! on one vendor, and so that each dependency gets its own circuit breaker.

pub mod breaker_state;
pub mod mailer;
pub mod payments;
