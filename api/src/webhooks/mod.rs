//! Reading the payment provider's webhooks. Pure code (no IO, no clock): the
//! route passes the current time in, and the sandbox provider signs with the
//! same module. `delivery` is the trait through which the process that stored
//! a webhook's signal hands it to its run.

pub mod delivery;
pub mod refund_events;
pub mod stripe_signature;
