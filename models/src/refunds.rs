//! `refunds`: one row per refund run, and the ticket and booking changes a
//! refund makes. Every function here runs inside the caller's transaction and
//! locks the booking first, so two refunds of one booking are decided one
//! after the other: a ticket is refunded once, and `bookings.refunded_minor`
//! (given back or being given back) never passes what was paid (a CHECK).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::bookings::Booking;
use crate::schema::{bookings, refunds, ticket_type_rows, tickets};
use crate::tickets::TicketStatus;

/// What a refund asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// These tickets of the booking (their share of what was paid).
    Tickets(Vec<Uuid>),
    /// Every ticket of the booking still valid, and whatever money is left.
    Everything,
    /// A sum of money, with no ticket voided.
    Amount(i64),
}

#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub run_id: Uuid,
    pub booking_id: Uuid,
    pub scope: Scope,
    /// `buyer`, `organizer`, `admin`, `event_cancellation`.
    pub requested_by: &'a str,
    /// The buyer may not refund a ticket that was used; organizers may.
    pub allow_checked_in: bool,
    pub reason: Option<&'a str>,
}

/// Why a refund cannot be made; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoSuchBooking,
    /// A ticket that is not the booking's.
    UnknownTicket(Uuid),
    /// Already refunded, or being refunded.
    NotRefundable {
        ticket_id: Uuid,
        status: TicketStatus,
    },
    /// Checked in at the door.
    Used(Uuid),
    /// More than is left of what was paid.
    AmountTooLarge {
        left_minor: i64,
    },
    /// Nothing left to give back, and no ticket to void.
    NothingToRefund,
}

/// What a refund took: its tickets (now `refund_pending`) and its amount
/// (reserved on the booking).
#[derive(Debug, Clone)]
pub struct Reserved {
    pub booking: Booking,
    pub ticket_ids: Vec<Uuid>,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refunds, check_for_backend(diesel::pg::Pg))]
pub struct RefundRow {
    pub run_id: Uuid,
    pub booking_id: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    pub tickets: i32,
    pub requested_by: String,
    pub status: String,
    pub provider_refund_id: Option<String>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable)]
struct TicketRow {
    id: Uuid,
    status: TicketStatus,
    checked_in: bool,
    paid_minor: i64,
}

async fn lock_booking(
    conn: &mut AsyncPgConnection,
    booking_id: Uuid,
) -> QueryResult<Option<(Booking, i64)>> {
    bookings::table
        .find(booking_id)
        .for_update()
        .select((Booking::as_select(), bookings::refunded_minor))
        .first(conn)
        .await
        .optional()
}

async fn tickets_of(conn: &mut AsyncPgConnection, booking_id: Uuid) -> QueryResult<Vec<TicketRow>> {
    tickets::table
        .filter(tickets::booking_id.eq(booking_id))
        .order(tickets::id.asc())
        .select((
            tickets::id,
            tickets::status,
            tickets::checked_in_at.is_not_null(),
            tickets::paid_minor,
        ))
        .load(conn)
        .await
}

/// Takes what a new refund run refunds: marks its tickets `refund_pending`,
/// reserves its amount on the booking and writes its row. The run must exist
/// (same transaction). `Err(Refusal)` changes nothing.
pub async fn reserve(
    conn: &mut AsyncPgConnection,
    req: &Request<'_>,
) -> QueryResult<Result<Reserved, Refusal>> {
    let Some((booking, refunded)) = lock_booking(conn, req.booking_id).await? else {
        return Ok(Err(Refusal::NoSuchBooking));
    };
    let left = booking.total_minor - refunded;
    let all = tickets_of(conn, req.booking_id).await?;
    let (ticket_ids, amount) = match &req.scope {
        Scope::Amount(amount) => {
            if *amount > left {
                return Ok(Err(Refusal::AmountTooLarge { left_minor: left }));
            }
            (Vec::new(), *amount)
        }
        Scope::Tickets(ids) => {
            let mut amount = 0;
            for id in ids {
                let Some(t) = all.iter().find(|t| t.id == *id) else {
                    return Ok(Err(Refusal::UnknownTicket(*id)));
                };
                if t.status != TicketStatus::Valid {
                    return Ok(Err(Refusal::NotRefundable {
                        ticket_id: t.id,
                        status: t.status,
                    }));
                }
                if t.checked_in && !req.allow_checked_in {
                    return Ok(Err(Refusal::Used(t.id)));
                }
                amount += t.paid_minor;
            }
            // Goodwill refunds may have given back part of these tickets' price already.
            (ids.clone(), amount.min(left))
        }
        Scope::Everything => {
            let ids: Vec<Uuid> = all
                .iter()
                .filter(|t| {
                    t.status == TicketStatus::Valid && (req.allow_checked_in || !t.checked_in)
                })
                .map(|t| t.id)
                .collect();
            if ids.is_empty() && left == 0 {
                return Ok(Err(Refusal::NothingToRefund));
            }
            (ids, left)
        }
    };
    if ticket_ids.is_empty() && amount == 0 {
        return Ok(Err(Refusal::NothingToRefund));
    }
    mark(conn, req.run_id, &ticket_ids).await?;
    diesel::update(bookings::table.find(req.booking_id))
        .set((
            bookings::refunded_minor.eq(bookings::refunded_minor + amount),
            bookings::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    diesel::insert_into(refunds::table)
        .values((
            refunds::run_id.eq(req.run_id),
            refunds::booking_id.eq(req.booking_id),
            refunds::amount_minor.eq(amount),
            refunds::currency.eq(&booking.currency),
            refunds::tickets.eq(ticket_ids.len() as i32),
            refunds::requested_by.eq(req.requested_by),
            refunds::reason.eq(req.reason),
        ))
        .execute(conn)
        .await?;
    Ok(Ok(Reserved {
        booking,
        ticket_ids,
        amount_minor: amount,
    }))
}

async fn mark(conn: &mut AsyncPgConnection, run_id: Uuid, ticket_ids: &[Uuid]) -> QueryResult<()> {
    if ticket_ids.is_empty() {
        return Ok(());
    }
    diesel::update(
        tickets::table
            .filter(tickets::id.eq_any(ticket_ids))
            .filter(tickets::status.eq(TicketStatus::Valid)),
    )
    .set((
        tickets::status.eq(TicketStatus::RefundPending),
        tickets::refund_run_id.eq(run_id),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// What a finished refund changed, for the buyer's email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub booking_id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    pub tickets: i64,
}

/// The provider gave the money back: void the run's tickets, put their units
/// back on sale, record it on the booking. `None` when it was done before.
pub async fn complete(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    provider_refund_id: Option<&str>,
) -> QueryResult<Option<Completed>> {
    let Some(row) = find(conn, run_id).await? else {
        return Ok(None);
    };
    let Some((booking, _)) = lock_booking(conn, row.booking_id).await? else {
        return Ok(None);
    };
    let done = diesel::update(
        refunds::table
            .find(run_id)
            .filter(refunds::status.eq("pending")),
    )
    .set((
        refunds::status.eq("succeeded"),
        refunds::completed_at.eq(diesel::dsl::now),
        refunds::provider_refund_id.eq(provider_refund_id),
    ))
    .execute(conn)
    .await?;
    if done == 0 {
        return Ok(None);
    }
    let voided: Vec<Uuid> = diesel::update(
        tickets::table
            .filter(tickets::refund_run_id.eq(run_id))
            .filter(tickets::status.eq(TicketStatus::RefundPending)),
    )
    .set((
        tickets::status.eq(TicketStatus::Void),
        tickets::refunded_at.eq(diesel::dsl::now),
    ))
    .returning(tickets::ticket_type_id)
    .get_results(conn)
    .await?;
    let mut per_type: Vec<(Uuid, i32)> = Vec::new();
    for tt in &voided {
        match per_type.iter_mut().find(|(id, _)| id == tt) {
            Some((_, n)) => *n += 1,
            None => per_type.push((*tt, 1)),
        }
    }
    // Row locks in ticket type id order, like every hold.
    per_type.sort();
    for (ticket_type_id, n) in &per_type {
        diesel::update(ticket_type_rows::table.find(ticket_type_id))
            .set(ticket_type_rows::taken.eq(ticket_type_rows::taken - n))
            .execute(conn)
            .await?;
        crate::holds::count_sold(conn, *ticket_type_id, -n).await?;
    }
    let still_valid: i64 = tickets::table
        .filter(tickets::booking_id.eq(row.booking_id))
        .filter(tickets::status.eq_any([TicketStatus::Valid, TicketStatus::RefundPending]))
        .count()
        .get_result(conn)
        .await?;
    let has_tickets: bool = diesel::select(diesel::dsl::exists(
        tickets::table.filter(tickets::booking_id.eq(row.booking_id)),
    ))
    .get_result(conn)
    .await?;
    let refunded_all = if has_tickets {
        still_valid == 0
    } else {
        row.amount_minor >= booking.total_minor
    };
    diesel::update(bookings::table.find(row.booking_id))
        .set((
            bookings::status.eq(if refunded_all {
                "refunded"
            } else {
                "partially_refunded"
            }),
            bookings::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(Some(Completed {
        booking_id: row.booking_id,
        user_id: booking.user_id,
        event_id: booking.event_id,
        amount_minor: row.amount_minor,
        currency: row.currency,
        tickets: voided.len() as i64,
    }))
}

/// The provider refused: the run's tickets are valid again and its amount is
/// released. False when it was done before.
pub async fn restore(conn: &mut AsyncPgConnection, run_id: Uuid) -> QueryResult<bool> {
    let Some(row) = find(conn, run_id).await? else {
        return Ok(false);
    };
    lock_booking(conn, row.booking_id).await?;
    let done = diesel::update(
        refunds::table
            .find(run_id)
            .filter(refunds::status.eq("pending")),
    )
    .set((
        refunds::status.eq("failed"),
        refunds::completed_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    if done == 0 {
        return Ok(false);
    }
    diesel::update(
        tickets::table
            .filter(tickets::refund_run_id.eq(run_id))
            .filter(tickets::status.eq(TicketStatus::RefundPending)),
    )
    .set(tickets::status.eq(TicketStatus::Valid))
    .execute(conn)
    .await?;
    diesel::update(bookings::table.find(row.booking_id))
        .set((
            bookings::refunded_minor.eq(bookings::refunded_minor - row.amount_minor),
            bookings::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(true)
}

/// An operator retries a refund that was given back: its tickets are marked
/// and its amount reserved again, if they still can be.
pub async fn remark(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    ticket_ids: &[Uuid],
) -> QueryResult<Result<(), Refusal>> {
    let Some(row) = find(conn, run_id).await? else {
        return Ok(Err(Refusal::NoSuchBooking));
    };
    if row.status == "pending" {
        return Ok(Ok(()));
    }
    let Some((booking, refunded)) = lock_booking(conn, row.booking_id).await? else {
        return Ok(Err(Refusal::NoSuchBooking));
    };
    if refunded + row.amount_minor > booking.total_minor {
        return Ok(Err(Refusal::AmountTooLarge {
            left_minor: booking.total_minor - refunded,
        }));
    }
    let all = tickets_of(conn, row.booking_id).await?;
    for id in ticket_ids {
        match all.iter().find(|t| t.id == *id) {
            None => return Ok(Err(Refusal::UnknownTicket(*id))),
            Some(t) if t.status != TicketStatus::Valid => {
                return Ok(Err(Refusal::NotRefundable {
                    ticket_id: t.id,
                    status: t.status,
                }));
            }
            Some(t) if t.checked_in && row.requested_by == "buyer" => {
                return Ok(Err(Refusal::Used(t.id)));
            }
            Some(_) => {}
        }
    }
    mark(conn, run_id, ticket_ids).await?;
    diesel::update(bookings::table.find(row.booking_id))
        .set((
            bookings::refunded_minor.eq(bookings::refunded_minor + row.amount_minor),
            bookings::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    diesel::update(refunds::table.find(run_id))
        .set((
            refunds::status.eq("pending"),
            refunds::completed_at.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)
        .await?;
    Ok(Ok(()))
}

pub async fn find(conn: &mut AsyncPgConnection, run_id: Uuid) -> QueryResult<Option<RefundRow>> {
    refunds::table
        .find(run_id)
        .select(RefundRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The refunds of a booking, oldest first.
pub async fn for_booking(
    conn: &mut AsyncPgConnection,
    booking_id: Uuid,
) -> QueryResult<Vec<RefundRow>> {
    refunds::table
        .filter(refunds::booking_id.eq(booking_id))
        .order(refunds::created_at.asc())
        .select(RefundRow::as_select())
        .load(conn)
        .await
}

/// Confirmed bookings of an event after `after` (id order), for a cancellation.
pub async fn bookings_to_cancel(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<(Uuid, Uuid)>> {
    let mut q = bookings::table
        .filter(bookings::event_id.eq(event_id))
        .filter(bookings::status.eq_any(["confirmed", "partially_refunded"]))
        .select((bookings::id, bookings::user_id))
        .order(bookings::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(bookings::id.gt(after));
    }
    q.load(conn).await
}

/// Confirmed bookings of an event (a cancellation's total).
pub async fn count_to_cancel(conn: &mut AsyncPgConnection, event_id: Uuid) -> QueryResult<i64> {
    bookings::table
        .filter(bookings::event_id.eq(event_id))
        .filter(bookings::status.eq_any(["confirmed", "partially_refunded"]))
        .count()
        .get_result(conn)
        .await
}

/// Checkouts of an event that have not finished (a cancellation stops them).
pub async fn open_checkouts(conn: &mut AsyncPgConnection, event_id: Uuid) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM workflow_runs WHERE kind = 'checkout' \
         AND status IN ('running', 'waiting', 'compensating') AND state->>'event_id' = $1::text",
    )
    .bind::<diesel::sql_types::Uuid, _>(event_id)
    .get_result(conn)
    .await?;
    Ok(count.n)
}

/// Tickets given back per ticket type (voided by a refund that succeeded),
/// for the organizer's sales figures.
pub async fn refunded_tickets_by_type(
    conn: &mut AsyncPgConnection,
    ticket_type_ids: &[Uuid],
) -> QueryResult<Vec<(Uuid, i64)>> {
    tickets::table
        .filter(tickets::ticket_type_id.eq_any(ticket_type_ids))
        .filter(tickets::refunded_at.is_not_null())
        .group_by(tickets::ticket_type_id)
        .select((tickets::ticket_type_id, diesel::dsl::count_star()))
        .load(conn)
        .await
}

/// Money given back per event (refunds that succeeded, goodwill refunds
/// included), in minor units of the event's currency.
pub async fn refunded_minor_by_event(
    conn: &mut AsyncPgConnection,
    event_ids: &[Uuid],
) -> QueryResult<Vec<(Uuid, i64)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        event_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        minor: i64,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT b.event_id, COALESCE(sum(r.amount_minor), 0)::bigint AS minor \
           FROM refunds r JOIN bookings b ON b.id = r.booking_id \
          WHERE r.status = 'succeeded' AND b.event_id = ANY($1) \
          GROUP BY b.event_id",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(event_ids)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.event_id, r.minor)).collect())
}
