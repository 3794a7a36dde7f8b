//! Boxoffice's workflows and the pure core of the workflow engine.
//!
//! # What this crate owns
//! Each workflow (checkout, refund, waitlist offer, reminder) as pure code:
//! state + input → next state, effects, waits; and the engine's vocabulary of
//! statuses, steps, compensations and retry classes. Every transition is
//! unit-testable with no IO.
//!
//! # What it may not import
//! axum, apalis, Diesel, HTTP clients, or any other Boxoffice crate.
