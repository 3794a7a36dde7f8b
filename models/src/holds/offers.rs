//! The holds of waitlist offers: units taken from what a type's waitlist
//! waits for, moved to the checkout of an accepted offer, and adopted by it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{HoldOutcome, Line, adopt, is_active, sorted};
use crate::prepared::KeepPrepared;
use crate::schema::{holds, ticket_type_rows};

/// The units a waitlist offer held for this run (moved to it when the offer
/// was accepted), priced, when they are exactly `lines`; otherwise refused,
/// and nothing is taken: a checkout of an offer never takes new units.
pub async fn adopt_offer_hold(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    lines: &[Line],
) -> QueryResult<HoldOutcome> {
    if let Some(held) = adopt(conn, run_id, lines).await? {
        return Ok(HoldOutcome::Held(held));
    }
    let wanted = sorted(lines);
    let line = wanted.as_slice().first().copied().unwrap_or(Line {
        ticket_type_id: Uuid::nil(),
        quantity: 0,
    });
    Ok(HoldOutcome::Refused {
        ticket_type_id: line.ticket_type_id,
        requested: line.quantity,
        available: 0,
    })
}

/// Holds `quantity` units of a ticket type for a waitlist offer run, taken
/// from the units its waitlist waits for (`taken += q`, `waiting_units -= q`),
/// with the offer's hold row. Call in the transaction that holds the type's
/// row lock and marks the entry offered. `false` when the units are not free.
pub async fn hold_for_offer(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    ticket_type_id: Uuid,
    quantity: i32,
    expires_at: DateTime<Utc>,
) -> QueryResult<bool> {
    let taken = diesel::update(
        ticket_type_rows::table
            .filter(ticket_type_rows::id.eq(ticket_type_id))
            .filter((ticket_type_rows::capacity - ticket_type_rows::taken).ge(quantity))
            .filter(ticket_type_rows::waiting_units.ge(quantity)),
    )
    .set((
        ticket_type_rows::taken.eq(ticket_type_rows::taken + quantity),
        ticket_type_rows::waiting_units.eq(ticket_type_rows::waiting_units - quantity),
    ))
    .execute(conn)
    .await?;
    if taken == 0 {
        return Ok(false);
    }
    diesel::insert_into(holds::table)
        .values((
            holds::id.eq(Uuid::now_v7()),
            holds::run_id.eq(run_id),
            holds::ticket_type_id.eq(ticket_type_id),
            holds::quantity.eq(quantity),
            holds::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(true)
}

/// Moves a run's active holds to another run (an accepted waitlist offer's
/// units to its checkout), with a new deadline; `held` is unchanged. Returns
/// the units moved.
pub async fn move_to_run(
    conn: &mut AsyncPgConnection,
    from_run: Uuid,
    to_run: Uuid,
    expires_at: DateTime<Utc>,
) -> QueryResult<i32> {
    let moved: Vec<i32> = diesel::update(
        holds::table
            .filter(holds::run_id.eq(from_run))
            .filter(is_active()),
    )
    .set((holds::run_id.eq(to_run), holds::expires_at.eq(expires_at)))
    .returning(holds::quantity)
    .keep_prepared()
    .get_results(conn)
    .await?;
    Ok(moved.into_iter().sum())
}
