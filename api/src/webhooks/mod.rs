//! Reading the payment provider's webhooks. Pure code (no IO, no clock): the
//! route passes the current time in, and the sandbox provider signs with the
//! same module.

pub mod refund_events;
pub mod stripe_signature;
