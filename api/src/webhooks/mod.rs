//! Checking that a webhook really comes from the payment provider. Pure code
//! (no IO, no clock): the route passes the current time in, and the sandbox
//! provider signs with the same module.

pub mod stripe_signature;
