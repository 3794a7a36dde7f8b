//! Refunds and event cancellations, through the API, the workers and the
//! payment sandbox over HTTP.

mod support;

mod buyer;
mod cancellation;
mod check_in;
mod provider;
mod races;
mod rules;
