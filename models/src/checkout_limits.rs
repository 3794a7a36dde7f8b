//! What one participant may hold of an event: at most one open checkout at a
//! time, and at most the event's `max_tickets_per_participant` tickets over
//! confirmed bookings and open checkouts.
//!
//! A check followed by an insert is not enough on its own: two starts with
//! different idempotency keys would both see no open checkout and both insert.
//! So a start takes a transaction-scoped advisory lock on (participant, event)
//! first ([`lock_and_find_open`]), checks, inserts its run and commits; the next
//! start of the same participant and event waits for that commit and then sees
//! the run.

use diesel::result::QueryResult;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Uuid as SqlUuid};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::prepared::KeepPrepared;

/// The statuses of a run that is not over.
const BUSY: &str = "status IN ('running', 'waiting', 'compensating')";

/// The participant's open checkout of an event.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct OpenRun {
    #[diesel(sql_type = SqlUuid)]
    pub run_id: Uuid,
    /// The key it was started with: a start with the same key is its retry.
    #[diesel(sql_type = Nullable<Text>)]
    pub idempotency_key: Option<String>,
}

/// Holds the start of checkouts of `user_id` for `event_id` until the end of
/// the caller's transaction (a transaction-scoped advisory lock), then returns
/// their open checkout of the event, if any: a run that is not over, unless it
/// is at one of `idle_steps` (steps that hold nothing). One round trip (the
/// SQL function `lock_and_find_open_checkout`). Call inside a transaction.
pub async fn lock_and_find_open(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    event_id: Uuid,
    idle_steps: &[&str],
) -> QueryResult<Option<OpenRun>> {
    diesel::sql_query("SELECT run_id, idempotency_key FROM lock_and_find_open_checkout($1, $2, $3)")
        .bind::<SqlUuid, _>(user_id)
        .bind::<SqlUuid, _>(event_id)
        .bind::<Array<Text>, _>(idle_steps)
        .keep_prepared()
        .get_result(conn)
        .await
        .optional()
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
