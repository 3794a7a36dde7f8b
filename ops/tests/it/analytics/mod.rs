//! Organizer analytics and exports: every figure exact to the raw tables after
//! a random mix over HTTP, the time series across a daylight-saving change,
//! exports streamed from a real process with flat memory, and the benchmark
//! command on a small event.

mod support;

mod bench_smoke;
mod docs;
pub mod exactness;
mod exports;
mod history;
mod series;
mod waitlist;
