//! The ledger audit: every invariant of the books, checked against Postgres in
//! one read-only, repeatable-read snapshot, so the audit sees one consistent
//! moment and never blocks (or is blocked by) a writer. Every check is one
//! set-based query that returns the rows breaking its invariant; nothing is
//! read row by row.
//!
//! The checks are grouped by what they are about: ticket types
//! ([`capacity`]), bookings and their tickets ([`bookings`]), payment intents
//! ([`payments`]), runs, emails and coupons ([`lifecycle`]). The comparison
//! with the payment provider's own records is in [`provider`]: this crate does
//! no HTTP, the caller brings the provider's lists.

pub mod bookings;
pub mod capacity;
pub mod lifecycle;
pub mod payments;
pub mod provider;

use diesel::QueryableByName;
use diesel::sql_types::{Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

/// One row that breaks one invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The invariant's stable name, e.g. `ticket_type_held`.
    pub invariant: String,
    /// The table (or provider object) the row belongs to.
    pub table: String,
    /// The row's id (a payment intent's or refund's provider id for payments).
    pub row_id: String,
    /// What the invariant requires.
    pub expected: String,
    /// What was found.
    pub found: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} {}: expected {}, found {}",
            self.invariant, self.table, self.row_id, self.expected, self.found
        )
    }
}

/// An invariant checked by one query. The query takes the event filter as
/// `$1` (a nullable uuid: NULL audits every event) and returns the columns of
/// [`Found`].
pub(crate) struct Check {
    pub name: &'static str,
    pub sql: &'static str,
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    row_id: String,
    #[diesel(sql_type = Text)]
    expected: String,
    #[diesel(sql_type = Text)]
    found: String,
}

/// Every invariant, in the order the report lists them.
pub fn invariants() -> Vec<&'static str> {
    all_checks().iter().map(|check| check.name).collect()
}

fn all_checks() -> Vec<&'static Check> {
    capacity::CHECKS
        .iter()
        .chain(bookings::CHECKS)
        .chain(payments::CHECKS)
        .chain(lifecycle::CHECKS)
        .collect()
}

/// Runs every check (of one event, or of all) in one read-only snapshot.
pub async fn audit(
    conn: &mut AsyncPgConnection,
    event_id: Option<Uuid>,
) -> diesel::QueryResult<Vec<Violation>> {
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(async move |conn| run_checks(conn, event_id).await)
        .await
}

/// The payment records of the books (one per intent a checkout knows of), read
/// in its own snapshot, for [`provider::compare`].
pub async fn payment_records(
    conn: &mut AsyncPgConnection,
    event_id: Option<Uuid>,
) -> diesel::QueryResult<Vec<provider::BookedIntent>> {
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(async move |conn| provider::booked_intents(conn, event_id).await)
        .await
}

async fn run_checks(
    conn: &mut AsyncPgConnection,
    event_id: Option<Uuid>,
) -> diesel::QueryResult<Vec<Violation>> {
    let mut violations = Vec::new();
    for check in all_checks() {
        let rows: Vec<Found> = diesel::sql_query(check.sql)
            .bind::<Nullable<diesel::sql_types::Uuid>, _>(event_id)
            .load(conn)
            .await?;
        violations.extend(rows.into_iter().map(|row| Violation {
            invariant: check.name.to_owned(),
            table: row.table_name,
            row_id: row.row_id,
            expected: row.expected,
            found: row.found,
        }));
    }
    Ok(violations)
}
