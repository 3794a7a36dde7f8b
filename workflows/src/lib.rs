//! Boxoffice's workflows and the pure core of the workflow engine.
//!
//! # Concepts
//! - A **run** is one execution of a workflow kind (a checkout, a refund...).
//!   Its state lives in Postgres; this crate only says how it changes.
//! - A **workflow kind** implements [`engine::Workflow`]: a pure function
//!   `decide(state, input, now) → Decision`: the next state, the run's status
//!   and step, at most one command to carry out, child runs to start, and when
//!   to wake up if nothing else happens. It brings its own state, its own local
//!   and remote commands and outcomes, and its own status view.
//! - **Inputs** are: the start, the outcome of a command, an outside signal
//!   (a payment webhook), a child run's end, a timer (the deadline passed), a
//!   cancel and an operator's retry.
//! - **Commands** are *local* (changes to our own tables, applied in the same
//!   transaction as the transition, their outcome fed straight back) or *remote*
//!   (calls to the payment provider, run as their own retried job with an
//!   idempotency key; their outcome comes back later as an input).
//! - **Child runs** are started in the parent's transaction, keyed by (parent,
//!   child key); their end reaches the parent as an input.
//! - **Compensation** undoes completed steps in reverse order when a step fails
//!   for good; each compensation is itself a command.
//!
//! The engine that stores runs and executes commands is in `workers`
//! (`engine/`); it only ever asks a workflow what to do next.
//!
//! # Adding a workflow kind
//! A new kind touches exactly:
//! 1. its workflow file here (`workflows/src/<kind>.rs`, with its state,
//!    commands, outcomes, view and `decide`), and its `pub mod` line below;
//! 2. its effects module in `workers/src/kinds/<kind>.rs` (how its local
//!    commands change our tables and how its remote commands reach the
//!    provider's adapter);
//! 3. one line in the registry, `workers/src/kinds/mod.rs`;
//! 4. its routes in `api/src/routes/`, which start runs with
//!    `api::runs::start` and are listed in `api/src/router.rs`.
//!
//! Nothing in the engine (`workers/src/engine/`), the status route or the
//! operator tools names a kind.
//!
//! # What it may not import
//! axum, apalis, Diesel, HTTP clients, or any other Boxoffice crate.

pub mod checkout;
pub mod engine;
pub mod event_cancellation;
pub mod money;
pub mod operator;
pub mod payments;
pub mod provider_signals;
pub mod refund;
pub mod refunding;
pub mod retry;
pub mod waitlist;
pub mod waitlist_offer;
