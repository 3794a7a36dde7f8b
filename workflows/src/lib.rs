//! Boxoffice's workflows and the pure core of the workflow engine.
//!
//! # Concepts
//! - A **run** is one execution of a workflow (a checkout, a refund...). Its
//!   state lives in Postgres; this crate only says how it changes.
//! - A **workflow** is a pure function `decide(state, input, now) → Decision`:
//!   the next state, the run's status and step, at most one [`engine::Command`]
//!   to carry out, and when to wake up if nothing else happens.
//! - **Inputs** are: the start, the outcome of a command, an outside signal
//!   (a payment webhook), a timer (the deadline passed) and an operator's cancel.
//! - **Commands** are *local* (changes to our own tables, applied in the same
//!   transaction as the transition, their outcome fed straight back) or *remote*
//!   (calls to the payment provider, run as their own retried job with an
//!   idempotency key; their outcome comes back later as an input).
//! - **Compensation** undoes completed steps in reverse order when a step fails
//!   for good; each compensation is itself a command.
//!
//! The engine that stores runs and executes commands is in `workers`
//! (`engine/`); it only ever asks a workflow what to do next.
//!
//! # What it may not import
//! axum, apalis, Diesel, HTTP clients, or any other Boxoffice crate.

pub mod checkout;
pub mod engine;
pub mod operator;
pub mod provider_signals;
pub mod retry;
