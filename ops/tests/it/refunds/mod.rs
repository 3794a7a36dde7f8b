//! Refunds and event cancellations, through the API, the workers and the
//! payment sandbox over HTTP.

mod buyer;
mod cancellation;
