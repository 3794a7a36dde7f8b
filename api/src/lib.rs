//! Boxoffice's HTTP API: a thin axum layer over the engine and the models.
//!
//! # What this crate owns
//! - The route list (`router.rs`) and one module per resource (`routes/`).
//! - Authentication (JWT access tokens, rotating refresh tokens, argon2id
//!   passwords), roles, rate limits (`rate_limit.rs`), login lockouts
//!   (`login_lockout.rs`), the client's address behind trusted proxies
//!   (`client_ip.rs`).
//! - The request preconditions shared by routes: `Idempotency-Key` on routes
//!   that start runs (`idempotency_key.rs`), RFC 9110 `If-Match` on versioned
//!   updates (`if_match.rs`).
//! - Error mapping: every error is `application/problem+json` with a stable `code`
//!   (`error.rs`), including rejections of malformed input (`extract.rs`).
//! - Request ids, metrics, security headers, CORS, timeouts (`middleware/`).
//! - Sessions and run status views kept in memory, right by Postgres's change
//!   notifications (`change_feed/`).
//! - Taking a new checkout's first step (its hold) in the process that
//!   started it, through the engine behind a trait object (`first_steps.rs`).
//! - A thread and a runtime of their own for work that must not wait behind
//!   a flood's requests (`own_thread.rs`).
//! - The OpenAPI document, generated from the handlers (`openapi.rs`).
//!
//! # What it may not import
//! `workers`, `schedules` and `ops`. A handler is route → extractor → one model or
//! engine call → response; business rules live in `workflows` and `models`.
//!
//! Building the app: [`router::app`] takes an [`state::AppState`] and returns a
//! service ready to serve; `ops` builds the state from configuration.

pub mod auth;
pub mod batches;
pub mod cache;
pub mod change_feed;
pub mod client_ip;
pub mod config;
pub mod error;
pub mod extract;
pub mod first_steps;
pub mod idempotency_key;
pub mod if_match;
pub mod login_lockout;
pub mod metrics_recorder;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod own_thread;
pub mod rate_limit;
pub mod redis_guard;
pub mod router;
pub mod routes;
pub mod runs;
pub mod starts_in_flight;
pub mod state;
pub mod webhooks;

pub use router::app;
pub use state::AppState;
