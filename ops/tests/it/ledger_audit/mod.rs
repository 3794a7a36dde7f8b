//! The ledger audit: a healthy set of books built through the real API (paid
//! checkouts with a coupon, a refund, a free checkout) audits clean; each
//! corruption planted with SQL in a copy of it is found, by name and row;
//! the `boxoffice audit` binary and `GET /v1/ops/audit` report the same; and
//! the audit reads a snapshot that waits for no writer.

mod books;
mod corruptions;
mod snapshot;
mod surfaces;
