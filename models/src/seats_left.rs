//! What is left of a ticket type for the public, read without a lock: the
//! refusal a hold would meet, learnt before taking one (a start after the
//! last seat is decided in its own transaction), and the figure a refused
//! hold reports.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::holds::{self, HoldOutcome, Line};
use crate::schema::ticket_types;

/// What is left of each of these ticket types for the public (never the
/// units its waitlist waits for), read without a lock; a type that does not
/// exist is left out.
pub async fn left_for_public(
    conn: &mut AsyncPgConnection,
    ticket_type_ids: &[Uuid],
) -> QueryResult<Vec<(Uuid, i32)>> {
    let guard = ticket_types::capacity
        - ticket_types::sold
        - ticket_types::held
        - ticket_types::waiting_units;
    ticket_types::table
        .filter(ticket_types::id.eq_any(ticket_type_ids))
        .select((ticket_types::id, guard))
        .load(conn)
        .await
}

/// The refusal a hold of `lines` would meet if it were taken now, when one of
/// them does not fit what is left (the first in holding order, as
/// [`holds::hold`] names it); `None` when every line fits, and then only a hold
/// decides. Read without a lock and takes nothing: what was left at the read
/// may be taken or freed a moment later, but a buyer refused here was refused
/// by the counters as they stood after the request came in, as a hold at that
/// moment would have been. A sold-out sale's later buyers are decided so
/// without waiting for the type's row lock.
pub async fn refused_now(
    conn: &mut AsyncPgConnection,
    lines: &[Line],
) -> QueryResult<Option<HoldOutcome>> {
    let ids: Vec<Uuid> = lines.iter().map(|l| l.ticket_type_id).collect();
    let left = left_for_public(conn, &ids).await?;
    Ok(refused_by(&left, lines))
}

/// The refusal a hold of `lines` would meet with `left` of each type (as
/// [`left_for_public`] read it; a type not there has nothing left), as
/// [`refused_now`] decides it.
pub fn refused_by(left: &[(Uuid, i32)], lines: &[Line]) -> Option<HoldOutcome> {
    holds::sorted(lines).into_iter().find_map(|line| {
        let available = left
            .iter()
            .find(|(id, _)| *id == line.ticket_type_id)
            .map_or(0, |&(_, left)| left.max(0));
        (available < line.quantity).then_some(HoldOutcome::Refused {
            ticket_type_id: line.ticket_type_id,
            requested: line.quantity,
            available,
        })
    })
}
