//! What the dispatcher and an offer's run write to the waiting entries: the
//! entries to serve in order, and an entry's way through `offered` and
//! `accepted` to its end.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{ACCEPTED, EXPIRED, Entry, OFFERED, WAITING};
use crate::schema::{ticket_types, waitlist_entries};

/// The type's waiting entries in serving order, locked (the dispatcher holds
/// the type's row lock).
pub async fn waiting_in_order(
    conn: &mut AsyncPgConnection,
    ticket_type_id: Uuid,
) -> QueryResult<Vec<Entry>> {
    waitlist_entries::table
        .filter(waitlist_entries::ticket_type_id.eq(ticket_type_id))
        .filter(waitlist_entries::status.eq(WAITING))
        .order((
            waitlist_entries::priority.ne("vip"),
            waitlist_entries::joined_at.asc(),
            waitlist_entries::id.asc(),
        ))
        .for_update()
        .select(Entry::as_select())
        .load(conn)
        .await
}

/// Ticket types of published events not yet over whose waitlist waits and
/// which have free units: the dispatcher's work (the partial index
/// `ticket_types_waitlisted_idx`).
pub async fn types_to_serve(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<Uuid>> {
    use crate::schema::events;
    ticket_types::table
        .inner_join(events::table)
        .filter(ticket_types::waiting_units.gt(0))
        .filter((ticket_types::capacity - ticket_types::taken).gt(0))
        .filter(events::status.eq("published"))
        .filter(events::ends_at.gt(diesel::dsl::now))
        .select(ticket_types::id)
        .limit(limit)
        .load(conn)
        .await
}

pub async fn set_blocked_since(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    since: Option<DateTime<Utc>>,
) -> QueryResult<()> {
    diesel::update(waitlist_entries::table.find(id))
        .set(waitlist_entries::blocked_since.eq(since))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Marks a waiting entry offered by `run_id` until `expires_at` (its units
/// are held by [`crate::holds::hold_for_offer`] in the same transaction).
pub async fn mark_offered(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    run_id: Uuid,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(
        waitlist_entries::table
            .find(id)
            .filter(waitlist_entries::status.eq(WAITING)),
    )
    .set((
        waitlist_entries::status.eq(OFFERED),
        waitlist_entries::offer_run_id.eq(run_id),
        waitlist_entries::offered_at.eq(now),
        waitlist_entries::offer_expires_at.eq(expires_at),
        waitlist_entries::blocked_since.eq(None::<DateTime<Utc>>),
        waitlist_entries::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Marks an offered entry accepted by its checkout.
pub async fn mark_accepted(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    checkout_run_id: Uuid,
) -> QueryResult<Entry> {
    diesel::update(waitlist_entries::table.find(id))
        .set((
            waitlist_entries::status.eq(ACCEPTED),
            waitlist_entries::checkout_run_id.eq(checkout_run_id),
            waitlist_entries::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Entry::as_returning())
        .get_result(conn)
        .await
}

/// The accepted entry of a checkout whose units went back (its payment
/// lapsed or it was called off): the entry is `expired`. Idempotent.
pub async fn checkout_released(
    conn: &mut AsyncPgConnection,
    checkout_run_id: Uuid,
) -> QueryResult<()> {
    diesel::update(
        waitlist_entries::table
            .filter(waitlist_entries::checkout_run_id.eq(checkout_run_id))
            .filter(waitlist_entries::status.eq(ACCEPTED)),
    )
    .set((
        waitlist_entries::status.eq(EXPIRED),
        waitlist_entries::ended_at.eq(diesel::dsl::now),
        waitlist_entries::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await
    .map(|_| ())
}
