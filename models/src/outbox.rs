//! `outbox`: messages for Redis queues, written in the transaction of the change
//! they announce and relayed after commit (see `workers::relay`). A crash between
//! commit and relay loses nothing; a crash between relay and delete relays the
//! message twice, which every consumer tolerates.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::prepared::KeepPrepared;
use crate::schema::outbox;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxMessage {
    pub id: i64,
    pub queue: String,
    pub payload: serde_json::Value,
    pub available_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = outbox)]
struct NewOutboxMessage<'a> {
    queue: &'a str,
    payload: serde_json::Value,
    available_at: DateTime<Utc>,
}

/// Queues `payload` for the job queue `queue` (the job's name, e.g. `"send_email"`),
/// to be relayed no earlier than `available_at` (now when `None`). Returns the id.
/// Takes a shared connection: a step's writes go out together (see
/// `workflow_steps::record_all`).
pub async fn push<T: Serialize>(
    mut conn: &AsyncPgConnection,
    queue: &str,
    payload: &T,
    available_at: Option<DateTime<Utc>>,
) -> QueryResult<i64> {
    let payload = serde_json::to_value(payload)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    diesel::insert_into(outbox::table)
        .values(NewOutboxMessage {
            queue,
            payload,
            available_at: available_at.unwrap_or_else(Utc::now),
        })
        .returning(outbox::id)
        .keep_prepared()
        .get_result(&mut conn)
        .await
}

/// [`push`] for several payloads in one statement, all due at `available_at`
/// (now when `None`): each message's id with its payload, read back.
pub async fn push_all<T: Serialize + serde::de::DeserializeOwned>(
    mut conn: &AsyncPgConnection,
    queue: &str,
    payloads: &[T],
    available_at: Option<DateTime<Utc>>,
) -> QueryResult<Vec<(i64, T)>> {
    if payloads.is_empty() {
        return Ok(Vec::new());
    }
    let at = available_at.unwrap_or_else(Utc::now);
    let rows = payloads
        .iter()
        .map(|payload| {
            Ok(NewOutboxMessage {
                queue,
                payload: serde_json::to_value(payload)
                    .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?,
                available_at: at,
            })
        })
        .collect::<QueryResult<Vec<_>>>()?;
    // Not kept prepared: its text changes with the number of rows.
    let inserted: Vec<(i64, serde_json::Value)> = diesel::insert_into(outbox::table)
        .values(&rows)
        .returning((outbox::id, outbox::payload))
        .get_results(&mut conn)
        .await?;
    inserted
        .into_iter()
        .map(|(id, payload)| {
            serde_json::from_value(payload)
                .map(|payload| (id, payload))
                .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
        })
        .collect()
}

/// Claims up to `limit` due messages of `queue`, oldest first, skipping rows
/// another relay holds. Call inside a transaction; delete what was relayed.
pub async fn claim_due(
    conn: &mut AsyncPgConnection,
    queue: &str,
    now: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<OutboxMessage>> {
    outbox::table
        .filter(outbox::queue.eq(queue))
        .filter(outbox::available_at.le(now))
        .order((outbox::available_at.asc(), outbox::id.asc()))
        .limit(limit)
        .for_update()
        .skip_locked()
        .select(OutboxMessage::as_select())
        .load(conn)
        .await
}

/// The queues that have a message due at `now`. Cheap while little is due
/// (an index range scan of the due messages): the idle relay's one query
/// per look, instead of a transaction per queue.
pub async fn due_queues(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
) -> QueryResult<Vec<String>> {
    outbox::table
        .filter(outbox::available_at.le(now))
        .select(outbox::queue)
        .distinct()
        .load(conn)
        .await
}

/// Takes the relay lock of one queue for the rest of the transaction, if free.
pub async fn try_lock_queue(conn: &mut AsyncPgConnection, queue: &str) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        locked: bool,
    }
    // Kept prepared: each relay pass of each queue runs it.
    let row: Locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock(hashtext($1)) AS locked")
        .bind::<diesel::sql_types::Text, _>(queue)
        .keep_prepared()
        .get_result(conn)
        .await?;
    Ok(row.locked)
}

/// Deletes the relayed messages `ids` (a relay's batch).
pub async fn delete(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<usize> {
    diesel::delete(outbox::table.filter(outbox::id.eq_any(ids)))
        .execute(conn)
        .await
}

/// Deletes one message (a backstop its step no longer needs). `id = $1`
/// rather than `id = ANY($1)`: Postgres plans the array form for its length
/// at every run while the table has no statistics (a plan for one element
/// looks cheaper than the generic plan for ten), and this runs at every step
/// that sends a command.
pub async fn delete_one(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<usize> {
    diesel::delete(outbox::table.find(id)).execute(conn).await
}

/// Messages waiting per queue, and the age of the oldest due one (relay lag).
pub async fn backlog(conn: &mut AsyncPgConnection) -> QueryResult<Vec<(String, i64)>> {
    outbox::table
        .group_by(outbox::queue)
        .select((outbox::queue, diesel::dsl::count_star()))
        .load(conn)
        .await
}

/// Per queue: messages waiting, and the time the oldest due one became due
/// (its age is the relay lag).
pub async fn backlog_with_lag(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
) -> QueryResult<Vec<(String, i64, Option<DateTime<Utc>>)>> {
    let totals = backlog(conn).await?;
    let oldest: Vec<(String, Option<DateTime<Utc>>)> = outbox::table
        .filter(outbox::available_at.le(now))
        .group_by(outbox::queue)
        .select((outbox::queue, diesel::dsl::min(outbox::available_at)))
        .load(conn)
        .await?;
    Ok(totals
        .into_iter()
        .map(|(queue, n)| {
            let due = oldest
                .iter()
                .find(|(q, _)| *q == queue)
                .and_then(|(_, at)| *at);
            (queue, n, due)
        })
        .collect())
}
