//! `tickets`: what a confirmed booking issued, and checking them in at the door.
//!
//! A ticket is `valid`, `refund_pending` (a refund is under way; not admitted)
//! or `void` (refunded or cancelled). Its number and QR payload are made by
//! [`crate::ticket_codes`] when the checkout confirms the booking.
//!
//! Check-in is one guarded UPDATE (`… WHERE status = 'valid' AND checked_in_at
//! IS NULL`): of two scans racing at two doors, Postgres lets exactly one match;
//! the other finds the row already checked in and learns when.

use std::io::Write;

use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::prelude::*;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::prepared::KeepPrepared;
use crate::schema::tickets;
use crate::ticket_codes::{TicketClaims, TicketNumber, TicketSigner};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub enum TicketStatus {
    Valid,
    RefundPending,
    Void,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Valid => "valid",
            TicketStatus::RefundPending => "refund_pending",
            TicketStatus::Void => "void",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "valid" => Some(TicketStatus::Valid),
            "refund_pending" => Some(TicketStatus::RefundPending),
            "void" => Some(TicketStatus::Void),
            _ => None,
        }
    }
}

impl ToSql<Text, Pg> for TicketStatus {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(self.as_str().as_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<Text, Pg> for TicketStatus {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let text = std::str::from_utf8(value.as_bytes())?;
        TicketStatus::parse(text).ok_or_else(|| format!("unknown ticket status {text:?}").into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = tickets, check_for_backend(diesel::pg::Pg))]
pub struct Ticket {
    pub id: Uuid,
    pub booking_id: Uuid,
    pub event_id: Uuid,
    pub ticket_type_id: Uuid,
    /// Grouped Crockford base32, e.g. `3ZK7-M1QD-…`; see [`TicketNumber`].
    pub number: String,
    pub status: TicketStatus,
    /// `BX1.…`: what the QR code on the ticket encodes.
    pub qr_payload: String,
    pub checked_in_at: Option<DateTime<Utc>>,
    pub checked_in_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = tickets)]
struct NewTicket {
    id: Uuid,
    booking_id: Uuid,
    event_id: Uuid,
    ticket_type_id: Uuid,
    number: String,
    qr_payload: String,
    paid_minor: i64,
}

/// One ticket a booking issues: its type, and what the buyer paid for it
/// (its price less its share of the order's discount).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToIssue {
    pub ticket_type_id: Uuid,
    pub paid_minor: i64,
}

pub async fn find_by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Ticket>> {
    tickets::table
        .find(id)
        .select(Ticket::as_select())
        .first(conn)
        .await
        .optional()
}

/// A booking's tickets in the order they were issued (ids are UUIDv7).
pub async fn list_for_booking(
    conn: &mut AsyncPgConnection,
    booking_id: Uuid,
) -> QueryResult<Vec<Ticket>> {
    tickets::table
        .filter(tickets::booking_id.eq(booking_id))
        .order(tickets::id.asc())
        .select(Ticket::as_select())
        .load(conn)
        .await
}

/// Issues the tickets of a confirmed booking, one per entry of `to_issue`,
/// in that order, each with a fresh number, a QR payload signed by `signer`
/// and what it was paid, in one INSERT. Call inside the transaction that
/// confirms the booking, so tickets exist exactly when the sale does. What
/// each paid is written with the ticket, not set after: a ticket's row and its
/// type's counters (`tickets_paid_minor`, at commit) change once.
///
/// Idempotent per booking: when the booking already has tickets (a step that
/// runs again after its commit), those are returned and nothing is inserted.
pub async fn insert_for_booking(
    conn: &mut AsyncPgConnection,
    booking_id: Uuid,
    event_id: Uuid,
    to_issue: &[ToIssue],
    signer: &TicketSigner,
) -> QueryResult<Vec<Ticket>> {
    let existing = list_for_booking(conn, booking_id).await?;
    if !existing.is_empty() {
        return Ok(existing);
    }
    issue_for_new_booking(conn, booking_id, event_id, to_issue, signer).await
}

/// [`insert_for_booking`] for a booking the caller's transaction has just
/// inserted: it cannot have tickets yet, so none are looked for (a
/// confirmation's statement fewer).
pub async fn issue_for_new_booking(
    conn: &mut AsyncPgConnection,
    booking_id: Uuid,
    event_id: Uuid,
    to_issue: &[ToIssue],
    signer: &TicketSigner,
) -> QueryResult<Vec<Ticket>> {
    let rows: Vec<NewTicket> = to_issue
        .iter()
        .map(|ticket| {
            let claims = TicketClaims {
                ticket_id: Uuid::now_v7(),
                event_id,
                number: TicketNumber::generate(),
            };
            NewTicket {
                id: claims.ticket_id,
                booking_id,
                event_id,
                ticket_type_id: ticket.ticket_type_id,
                number: claims.number.to_string(),
                qr_payload: signer.sign(&claims),
                paid_minor: ticket.paid_minor,
            }
        })
        .collect();
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut inserted = diesel::insert_into(tickets::table)
        .values(&rows)
        .returning(Ticket::as_returning())
        .keep_prepared()
        .get_results(conn)
        .await?;
    // RETURNING keeps no promised order; callers get issue order.
    inserted.sort_by_key(|t| t.id);
    Ok(inserted)
}

/// Sets the status of every ticket of a booking (the refund workflow: `valid` →
/// `refund_pending` → `void`, or back to `valid` when the provider refuses).
/// Returns how many changed.
pub async fn set_status_for_booking(
    conn: &mut AsyncPgConnection,
    booking_id: Uuid,
    from: TicketStatus,
    to: TicketStatus,
) -> QueryResult<usize> {
    diesel::update(
        tickets::table
            .filter(tickets::booking_id.eq(booking_id))
            .filter(tickets::status.eq(from)),
    )
    .set(tickets::status.eq(to))
    .execute(conn)
    .await
}

/// What a scan at the door came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckIn {
    /// Admitted now; the ticket as it is after the check-in.
    CheckedIn(Ticket),
    /// Admitted before: when and by whom (the first scan wins, for good).
    AlreadyCheckedIn {
        ticket: Ticket,
        checked_in_at: DateTime<Utc>,
    },
    /// The ticket is of another event.
    WrongEvent(Ticket),
    /// Refunded, cancelled or being refunded.
    NotValid(Ticket),
    /// No ticket with this id and number (e.g. signed for another deployment).
    Unknown,
}

/// Checks in the ticket `claims` names, for `event_id`, by `by`.
///
/// The UPDATE carries every condition, so the decision and the write are one
/// atomic step: of two concurrent scans exactly one gets `CheckedIn`. When it
/// matches nothing, the row is read to say why.
pub async fn check_in(
    conn: &mut AsyncPgConnection,
    claims: &TicketClaims,
    event_id: Uuid,
    by: Uuid,
) -> QueryResult<CheckIn> {
    let number = claims.number.to_string();
    // The read after a missed UPDATE can find an admissible ticket only if the
    // row changed in between (a refund undone): then the UPDATE is tried again.
    for _ in 0..3 {
        let updated = diesel::update(
            tickets::table
                .filter(tickets::id.eq(claims.ticket_id))
                .filter(tickets::number.eq(&number))
                .filter(tickets::event_id.eq(event_id))
                .filter(tickets::status.eq(TicketStatus::Valid))
                .filter(tickets::checked_in_at.is_null()),
        )
        .set((
            tickets::checked_in_at.eq(diesel::dsl::now),
            tickets::checked_in_by.eq(by),
        ))
        .returning(Ticket::as_returning())
        .get_result(conn)
        .await
        .optional()?;
        if let Some(ticket) = updated {
            return Ok(CheckIn::CheckedIn(ticket));
        }
        let Some(ticket) = find_by_id(conn, claims.ticket_id).await? else {
            return Ok(CheckIn::Unknown);
        };
        if ticket.number != number {
            return Ok(CheckIn::Unknown);
        }
        if ticket.event_id != event_id {
            return Ok(CheckIn::WrongEvent(ticket));
        }
        // Status before the check-in time: a refunded ticket admits no one,
        // whether or not it was scanned before the refund.
        if ticket.status != TicketStatus::Valid {
            return Ok(CheckIn::NotValid(ticket));
        }
        if let Some(checked_in_at) = ticket.checked_in_at {
            return Ok(CheckIn::AlreadyCheckedIn {
                checked_in_at,
                ticket,
            });
        }
    }
    // Reported like a lost serialisation race: the caller may simply retry.
    Err(diesel::result::Error::DatabaseError(
        diesel::result::DatabaseErrorKind::SerializationFailure,
        Box::new("the ticket kept changing during check-in".to_owned()),
    ))
}
