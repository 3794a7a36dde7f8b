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

/// One start of a gathered batch: whose, for which event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Starter {
    pub user_id: Uuid,
    pub event_id: Uuid,
}

#[derive(QueryableByName)]
struct OpenOf {
    #[diesel(sql_type = BigInt)]
    ord: i64,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    run_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    idempotency_key: Option<String>,
}

/// [`lock_and_find_open`] for several starts in one statement: takes each
/// one's lock (in the order given; the caller sorts, so that two callers
/// never wait on each other's) and returns each one's open checkout, in the
/// order of `starters`. Call inside a transaction.
pub async fn lock_and_find_open_many(
    conn: &mut AsyncPgConnection,
    starters: &[Starter],
    idle_steps: &[&str],
) -> QueryResult<Vec<Option<OpenRun>>> {
    let users: Vec<Uuid> = starters.iter().map(|s| s.user_id).collect();
    let events: Vec<Uuid> = starters.iter().map(|s| s.event_id).collect();
    let rows: Vec<OpenOf> = diesel::sql_query(
        "SELECT s.ord, o.run_id, o.idempotency_key
           FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS s(owner, event, ord)
           LEFT JOIN LATERAL lock_and_find_open_checkout(s.owner, s.event, $3) o ON true
          ORDER BY s.ord",
    )
    .bind::<Array<SqlUuid>, _>(&users)
    .bind::<Array<SqlUuid>, _>(&events)
    .bind::<Array<Text>, _>(idle_steps)
    .keep_prepared()
    .load(conn)
    .await?;
    let mut open = vec![None; starters.len()];
    for row in rows {
        let Some(slot) = usize::try_from(row.ord - 1)
            .ok()
            .and_then(|i| open.get_mut(i))
        else {
            continue;
        };
        *slot = row.run_id.map(|run_id| OpenRun {
            run_id,
            idempotency_key: row.idempotency_key,
        });
    }
    Ok(open)
}

#[derive(QueryableByName)]
struct CountOf {
    #[diesel(sql_type = BigInt)]
    ord: i64,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// [`tickets_of`] for several starts in one statement, in the order of
/// `starters`.
pub async fn tickets_of_many(
    conn: &mut AsyncPgConnection,
    kind: &str,
    starters: &[Starter],
    idle_steps: &[&str],
) -> QueryResult<Vec<i64>> {
    let users: Vec<Uuid> = starters.iter().map(|s| s.user_id).collect();
    let events: Vec<Uuid> = starters.iter().map(|s| s.event_id).collect();
    let rows: Vec<CountOf> = diesel::sql_query(format!(
        "SELECT s.ord,
                (SELECT count(*) FROM tickets t JOIN bookings b ON b.id = t.booking_id
                  WHERE b.user_id = s.owner AND b.event_id = s.event
                    AND b.status = 'confirmed' AND t.status <> 'void')
              + (SELECT coalesce(sum((item ->> 'quantity')::bigint), 0)
                   FROM workflow_runs r CROSS JOIN LATERAL jsonb_array_elements(r.state -> 'items') item
                  WHERE r.kind = $1 AND r.owner_id = s.owner AND r.state ->> 'event_id' = s.event::text
                    AND r.{BUSY} AND NOT (r.step = ANY($4)))::bigint AS n
           FROM unnest($2::uuid[], $3::uuid[]) WITH ORDINALITY AS s(owner, event, ord)
          ORDER BY s.ord"
    ))
    .bind::<Text, _>(kind)
    .bind::<Array<SqlUuid>, _>(&users)
    .bind::<Array<SqlUuid>, _>(&events)
    .bind::<Array<Text>, _>(idle_steps)
    .load(conn)
    .await?;
    let mut counts = vec![0; starters.len()];
    for row in rows {
        if let Some(slot) = usize::try_from(row.ord - 1)
            .ok()
            .and_then(|i| counts.get_mut(i))
        {
            *slot = row.n;
        }
    }
    Ok(counts)
}
