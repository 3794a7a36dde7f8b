//! What one participant may hold of an event: at most one open checkout at a
//! time, and at most the event's `max_tickets_per_participant` tickets over
//! confirmed bookings and open checkouts.
//!
//! A check followed by an insert is not enough on its own: two starts with
//! different idempotency keys would both see no open checkout and both insert.
//! So a start takes a transaction-scoped advisory lock on (participant, event)
//! first ([`lock`]), checks, inserts its run and commits; the next start of the
//! same participant and event waits for that commit and then sees the run.

use diesel::result::QueryResult;
use diesel::sql_types::{Array, BigInt, Integer, Text, Uuid as SqlUuid};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// The first key of the advisory lock (the second is a hash of participant and
/// event): keeps these locks apart from the other two-key advisory locks.
const LOCK_CLASS: i32 = 7_414_180;

/// The statuses of a run that is not over.
const BUSY: &str = "status IN ('running', 'waiting', 'compensating')";

/// Holds the start of checkouts of `user_id` for `event_id` until the end of
/// the caller's transaction. Call inside a transaction.
pub async fn lock(conn: &mut AsyncPgConnection, user_id: Uuid, event_id: Uuid) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind::<Integer, _>(LOCK_CLASS)
        .bind::<Text, _>(format!("{user_id}:{event_id}"))
        .execute(conn)
        .await
        .map(|_| ())
}

#[derive(QueryableByName)]
struct RunRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// The participant's open run of `kind` for the event, if any: a run that is
/// not over, unless it is at one of `idle_steps` (steps that hold nothing).
pub async fn open_run(
    conn: &mut AsyncPgConnection,
    kind: &str,
    user_id: Uuid,
    event_id: Uuid,
    idle_steps: &[&str],
) -> QueryResult<Option<Uuid>> {
    let row: Option<RunRow> = diesel::sql_query(format!(
        "SELECT id FROM workflow_runs
          WHERE kind = $1 AND owner_id = $2 AND state ->> 'event_id' = $3 AND {BUSY}
            AND NOT (step = ANY($4))
          ORDER BY created_at LIMIT 1"
    ))
    .bind::<Text, _>(kind)
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(event_id.to_string())
    .bind::<Array<Text>, _>(idle_steps)
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| r.id))
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The tickets the participant has of the event: those of confirmed bookings,
/// plus those its open runs of `kind` are after (their state's `items`).
pub async fn tickets_of(
    conn: &mut AsyncPgConnection,
    kind: &str,
    user_id: Uuid,
    event_id: Uuid,
    idle_steps: &[&str],
) -> QueryResult<i64> {
    let row: Count = diesel::sql_query(format!(
        "SELECT (SELECT count(*) FROM tickets t JOIN bookings b ON b.id = t.booking_id
                  WHERE b.user_id = $2 AND b.event_id = $3::uuid
                    AND b.status = 'confirmed' AND t.status <> 'void')
              + (SELECT coalesce(sum((item ->> 'quantity')::bigint), 0)
                   FROM workflow_runs r CROSS JOIN LATERAL jsonb_array_elements(r.state -> 'items') item
                  WHERE r.kind = $1 AND r.owner_id = $2 AND r.state ->> 'event_id' = $3 AND r.{BUSY}
                    AND NOT (r.step = ANY($4)))::bigint AS n"
    ))
    .bind::<Text, _>(kind)
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(event_id.to_string())
    .bind::<Array<Text>, _>(idle_steps)
    .get_result(conn)
    .await?;
    Ok(row.n)
}
