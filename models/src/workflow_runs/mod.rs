//! `workflow_runs`: one row per workflow run, the truth about where it stands.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::prepared::KeepPrepared;
use crate::schema::workflow_runs;

mod new_runs;

pub use new_runs::{
    Inserted, NewRun, Stamped, insert_decided, insert_idempotent, insert_many, push_start,
    push_starts, set_initial_state, start, start_child, start_within, start_within_due,
};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = workflow_runs, check_for_backend(diesel::pg::Pg))]
pub struct Run {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub step: String,
    pub state: serde_json::Value,
    pub version: i32,
    pub wake_at: Option<DateTime<Utc>>,
    pub pending_effect: Option<serde_json::Value>,
    pub attempts: i32,
    pub last_error: Option<serde_json::Value>,
    pub correlation_id: Option<String>,
    pub owner_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// What the owner sees: the kind's status view, written with every transition.
    pub view: serde_json::Value,
    /// The run that started this one, and the key it started it under.
    pub parent_id: Option<Uuid>,
    pub child_key: Option<String>,
}

/// The owner's run of this kind started with this idempotency key, if any.
pub async fn by_idempotency_key(
    conn: &mut AsyncPgConnection,
    kind: &str,
    owner_id: Option<Uuid>,
    key: &Option<String>,
) -> QueryResult<Option<Run>> {
    workflow_runs::table
        .filter(workflow_runs::kind.eq(kind))
        .filter(workflow_runs::owner_id.eq(owner_id))
        .filter(workflow_runs::idempotency_key.eq(key))
        .select(Run::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Run>> {
    workflow_runs::table
        .find(id)
        .select(Run::as_select())
        .first(conn)
        .await
        .optional()
}

/// Locks the run for a transition (call inside a transaction).
pub async fn lock(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Run>> {
    workflow_runs::table
        .find(id)
        .for_update()
        .select(Run::as_select())
        .first(conn)
        .await
        .optional()
}

/// The versions of several runs, in one query (a run that is gone is left out):
/// what long polls compare against.
pub async fn versions(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<(Uuid, i32)>> {
    workflow_runs::table
        .filter(workflow_runs::id.eq_any(ids))
        .select((workflow_runs::id, workflow_runs::version))
        .load(conn)
        .await
}

/// Everything a transition writes.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = workflow_runs, treat_none_as_null = true)]
pub struct Transition {
    pub status: String,
    pub step: String,
    pub state: serde_json::Value,
    pub wake_at: Option<DateTime<Utc>>,
    pub pending_effect: Option<serde_json::Value>,
    pub attempts: i32,
    pub last_error: Option<serde_json::Value>,
    pub finished_at: Option<DateTime<Utc>>,
    pub view: serde_json::Value,
}

/// Writes a transition of a locked run and bumps its version; returns the new version.
/// Takes a shared connection: a step's writes go out together (see
/// `workflow_steps::record_all`).
pub async fn apply(mut conn: &AsyncPgConnection, id: Uuid, t: &Transition) -> QueryResult<i32> {
    diesel::update(workflow_runs::table.find(id))
        .set((
            t,
            workflow_runs::version.eq(workflow_runs::version + 1),
            workflow_runs::updated_at.eq(diesel::dsl::now),
        ))
        .returning(workflow_runs::version)
        .keep_prepared()
        .get_result(&mut conn)
        .await
}

/// [`apply`] for several locked runs in one statement, each with its own
/// transition: a batch's first steps move hundreds of runs, and a statement
/// per run made the batch's transaction (and the ticket type's row lock it
/// holds) last a round of the server's per-statement work for each of them.
/// Returns each moved run's id with its new version, in no particular order;
/// a run missing from the answer was not there. Its text never changes, so it
/// stays prepared.
pub async fn apply_many(
    mut conn: &AsyncPgConnection,
    moves: &[(Uuid, &Transition)],
) -> QueryResult<Vec<(Uuid, i32)>> {
    use diesel::sql_types::{Array, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};

    #[derive(QueryableByName)]
    struct Moved {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
        #[diesel(sql_type = Int4)]
        version: i32,
    }

    if moves.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = moves.iter().map(|(id, _)| *id).collect();
    let statuses: Vec<&str> = moves.iter().map(|(_, t)| t.status.as_str()).collect();
    let steps: Vec<&str> = moves.iter().map(|(_, t)| t.step.as_str()).collect();
    let states: Vec<&serde_json::Value> = moves.iter().map(|(_, t)| &t.state).collect();
    let wake_ats: Vec<Option<DateTime<Utc>>> = moves.iter().map(|(_, t)| t.wake_at).collect();
    let effects: Vec<Option<&serde_json::Value>> = moves
        .iter()
        .map(|(_, t)| t.pending_effect.as_ref())
        .collect();
    let attempts: Vec<i32> = moves.iter().map(|(_, t)| t.attempts).collect();
    let errors: Vec<Option<&serde_json::Value>> =
        moves.iter().map(|(_, t)| t.last_error.as_ref()).collect();
    let finished: Vec<Option<DateTime<Utc>>> = moves.iter().map(|(_, t)| t.finished_at).collect();
    let views: Vec<&serde_json::Value> = moves.iter().map(|(_, t)| &t.view).collect();
    let moved: Vec<Moved> = diesel::sql_query(
        "UPDATE workflow_runs r
            SET status = m.status, step = m.step, state = m.state, wake_at = m.wake_at,
                pending_effect = m.pending_effect, attempts = m.attempts,
                last_error = m.last_error, finished_at = m.finished_at, view = m.view,
                version = r.version + 1, updated_at = now()
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[],
                       $6::jsonb[], $7::int4[], $8::jsonb[], $9::timestamptz[], $10::jsonb[])
                AS m(id, status, step, state, wake_at, pending_effect, attempts, last_error,
                     finished_at, view)
          WHERE r.id = m.id
      RETURNING r.id, r.version",
    )
    .bind::<Array<SqlUuid>, _>(&ids)
    .bind::<Array<Text>, _>(&statuses)
    .bind::<Array<Text>, _>(&steps)
    .bind::<Array<Jsonb>, _>(&states)
    .bind::<Array<Nullable<Timestamptz>>, _>(&wake_ats)
    .bind::<Array<Nullable<Jsonb>>, _>(&effects)
    .bind::<Array<Int4>, _>(&attempts)
    .bind::<Array<Nullable<Jsonb>>, _>(&errors)
    .bind::<Array<Nullable<Timestamptz>>, _>(&finished)
    .bind::<Array<Jsonb>, _>(&views)
    .keep_prepared()
    .load(&mut conn)
    .await?;
    Ok(moved.into_iter().map(|m| (m.id, m.version)).collect())
}

/// Records a failed attempt of the current step (the run stays where it is);
/// the next attempt is due at `retry_at`. Until then the run is not stalled
/// (see [`stalled`]): a retry waiting out its backoff must not be re-driven
/// at once, or every re-drive would start another chain of attempts and
/// spend the run's retries in a fraction of the backoff.
pub async fn record_attempt_failure(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    error: &serde_json::Value,
    retry_at: DateTime<Utc>,
) -> QueryResult<i32> {
    diesel::update(workflow_runs::table.find(id))
        .set((
            workflow_runs::attempts.eq(workflow_runs::attempts + 1),
            workflow_runs::wake_at.eq(retry_at),
            workflow_runs::last_error.eq(error),
            workflow_runs::version.eq(workflow_runs::version + 1),
            workflow_runs::updated_at.eq(diesel::dsl::now),
        ))
        .returning(workflow_runs::attempts)
        .get_result(conn)
        .await
}

/// Waiting runs whose deadline has passed: the timer backstop.
pub async fn overdue(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Uuid>> {
    workflow_runs::table
        .filter(workflow_runs::status.eq("waiting"))
        .filter(workflow_runs::wake_at.le(now))
        .order(workflow_runs::wake_at.asc())
        .limit(limit)
        .select(workflow_runs::id)
        .load(conn)
        .await
}

/// Running or compensating runs that have not moved since `before`: their
/// message may have been lost (Redis lost its data), so they are re-driven.
/// A run whose remote command waits for a retry (its `wake_at`, set by
/// [`record_attempt_failure`]) counts from when that retry was due.
pub async fn stalled(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Uuid>> {
    workflow_runs::table
        .filter(workflow_runs::status.eq_any(["running", "compensating"]))
        .filter(workflow_runs::updated_at.lt(before))
        .filter(
            workflow_runs::wake_at
                .is_null()
                .or(workflow_runs::wake_at.lt(before)),
        )
        .order(workflow_runs::updated_at.asc())
        .limit(limit)
        .select(workflow_runs::id)
        .load(conn)
        .await
}

/// Marks a stalled run as looked at, so the sweep does not re-drive it again at
/// once (the version is untouched: it is not a transition).
pub async fn touch(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(workflow_runs::table.find(id))
        .set(workflow_runs::updated_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
        .map(|_| ())
}

/// How many children of a parent are in each status.
pub async fn children_by_status(
    conn: &mut AsyncPgConnection,
    parent_id: Uuid,
) -> QueryResult<Vec<(String, i64)>> {
    workflow_runs::table
        .filter(workflow_runs::parent_id.eq(parent_id))
        .group_by(workflow_runs::status)
        .select((workflow_runs::status, diesel::dsl::count_star()))
        .load(conn)
        .await
}

/// Parks a locked run as `failed` for an operator: its job kept failing. The
/// caller keeps what it needs to resume in `last_error` (see
/// `workers::engine::parking`); state, step and pending effect are untouched.
pub async fn park(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    last_error: &serde_json::Value,
) -> QueryResult<i32> {
    set_status(conn, id, "failed", Some(last_error)).await
}

/// Gives a parked run back the status it had (an operator retries it).
pub async fn unpark(conn: &mut AsyncPgConnection, id: Uuid, status: &str) -> QueryResult<i32> {
    set_status(conn, id, status, None).await
}

/// Moves a run to `status` with `last_error` outside a step (parking and
/// its undoing); returns the new version.
async fn set_status(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status: &str,
    last_error: Option<&serde_json::Value>,
) -> QueryResult<i32> {
    diesel::update(workflow_runs::table.find(id))
        .set((
            workflow_runs::status.eq(status),
            workflow_runs::last_error.eq(last_error),
            workflow_runs::version.eq(workflow_runs::version + 1),
            workflow_runs::updated_at.eq(diesel::dsl::now),
        ))
        .returning(workflow_runs::version)
        .get_result(conn)
        .await
}

/// Replaces the error of a failed run (e.g. an operator failed it for good)
/// without moving it.
pub async fn set_last_error(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    last_error: &serde_json::Value,
) -> QueryResult<i32> {
    diesel::update(workflow_runs::table.find(id))
        .set((
            workflow_runs::last_error.eq(last_error),
            workflow_runs::version.eq(workflow_runs::version + 1),
            workflow_runs::updated_at.eq(diesel::dsl::now),
            workflow_runs::finished_at.eq(diesel::dsl::now),
        ))
        .returning(workflow_runs::version)
        .get_result(conn)
        .await
}

/// Runs for an operator, newest first, optionally of one status and kind.
pub async fn list(
    conn: &mut AsyncPgConnection,
    status: Option<&str>,
    kind: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Run>> {
    let mut q = workflow_runs::table.select(Run::as_select()).into_boxed();
    if let Some(status) = status {
        q = q.filter(workflow_runs::status.eq(status.to_owned()));
    }
    if let Some(kind) = kind {
        q = q.filter(workflow_runs::kind.eq(kind.to_owned()));
    }
    q.order((workflow_runs::created_at.desc(), workflow_runs::id.desc()))
        .limit(limit)
        .load(conn)
        .await
}

/// How many runs are in each status (for `boxoffice queues` and metrics).
pub async fn count_by_status(conn: &mut AsyncPgConnection) -> QueryResult<Vec<(String, i64)>> {
    workflow_runs::table
        .group_by(workflow_runs::status)
        .select((workflow_runs::status, diesel::dsl::count_star()))
        .load(conn)
        .await
}
