//! The `boxoffice` command: one binary for every role of a Boxoffice deployment.
//!
//! - `serve`: API replicas; `work`: workers and schedules; `all`: both.
//! - `up`: development all-in-one, starting private Postgres and Redis when no
//!   URLs are given, migrating and seeding demo data.
//! - `migrate`, `users create-admin`: administration.
//! - `services`: only the private Postgres and Redis (the test suite's setup).
//! - `sandbox`: a local Stripe-compatible payment provider (see [`sandbox`]).
//! - `bench checkout`: the checkout benchmark (see [`bench`]).
//!
//! This crate composes every other crate; nothing depends on it.

pub mod bench;
pub mod chaos;
pub mod cli;
pub mod commands;
pub mod config;
pub mod first_steps;
pub mod listener;
pub mod local_services;
pub mod operator;
pub mod runtime;
pub mod sandbox;
pub mod secrets;
pub mod seed;
pub mod shutdown;
pub mod system;
pub mod telemetry;
