//! `workflow_runs`: one row per workflow run, the truth about where it stands.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::prepared::KeepPrepared;
use crate::schema::workflow_runs;

#[derive(Debug, Clone, Queryable, Selectable)]
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

// `None` is bound as NULL (every such column defaults to NULL), so that the
// insert's text is one: it is kept prepared (`crate::prepared`).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = workflow_runs, treat_none_as_default_value = false)]
pub struct NewRun {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub step: String,
    pub state: serde_json::Value,
    pub correlation_id: Option<String>,
    pub owner_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<Vec<u8>>,
    pub view: serde_json::Value,
    pub parent_id: Option<Uuid>,
    pub child_key: Option<String>,
}

impl NewRun {
    /// The run as its insert would write it at `now` (the table's defaults
    /// filled in), for an advance that decides it before it is written
    /// (see [`insert_decided`]).
    pub fn unwritten(&self, now: DateTime<Utc>) -> Run {
        Run {
            id: self.id,
            kind: self.kind.clone(),
            status: self.status.clone(),
            step: self.step.clone(),
            state: self.state.clone(),
            version: 1,
            wake_at: None,
            pending_effect: None,
            attempts: 0,
            last_error: None,
            correlation_id: self.correlation_id.clone(),
            owner_id: self.owner_id,
            idempotency_key: self.idempotency_key.clone(),
            request_hash: self.request_hash.clone(),
            created_at: now,
            updated_at: now,
            finished_at: None,
            view: self.view.clone(),
            parent_id: self.parent_id,
            child_key: self.child_key.clone(),
        }
    }
}

/// A new run as inserted: as started ([`NewRun`]), or with the columns of
/// its first transition already taken ([`insert_decided`]). Both inserts
/// write every column, so they are one statement, kept prepared.
#[derive(Insertable)]
#[diesel(table_name = workflow_runs, treat_none_as_default_value = false)]
struct NewRunRow<'a> {
    id: Uuid,
    kind: &'a str,
    status: &'a str,
    step: &'a str,
    state: &'a serde_json::Value,
    wake_at: Option<DateTime<Utc>>,
    pending_effect: Option<&'a serde_json::Value>,
    attempts: i32,
    last_error: Option<&'a serde_json::Value>,
    correlation_id: Option<&'a str>,
    owner_id: Option<Uuid>,
    idempotency_key: Option<&'a str>,
    request_hash: Option<&'a [u8]>,
    finished_at: Option<DateTime<Utc>>,
    view: &'a serde_json::Value,
    parent_id: Option<Uuid>,
    child_key: Option<&'a str>,
}

impl<'a> NewRunRow<'a> {
    /// `new` as started, or moved by `first` when it is decided already.
    fn of(new: &'a NewRun, first: Option<&'a Transition>) -> Self {
        let started = NewRunRow {
            id: new.id,
            kind: &new.kind,
            status: &new.status,
            step: &new.step,
            state: &new.state,
            wake_at: None,
            pending_effect: None,
            attempts: 0,
            last_error: None,
            correlation_id: new.correlation_id.as_deref(),
            owner_id: new.owner_id,
            idempotency_key: new.idempotency_key.as_deref(),
            request_hash: new.request_hash.as_deref(),
            finished_at: None,
            view: &new.view,
            parent_id: new.parent_id,
            child_key: new.child_key.as_deref(),
        };
        match first {
            None => started,
            Some(t) => NewRunRow {
                status: &t.status,
                step: &t.step,
                state: &t.state,
                wake_at: t.wake_at,
                pending_effect: t.pending_effect.as_ref(),
                attempts: t.attempts,
                last_error: t.last_error.as_ref(),
                finished_at: t.finished_at,
                view: &t.view,
                ..started
            },
        }
    }
}

pub enum Inserted {
    Created(Run),
    /// A run with the same owner, kind and idempotency key already exists.
    Existing(Run),
}

/// Inserts the run unless its idempotency key was used before, in which case
/// the earlier run is returned (the caller compares request hashes).
pub async fn insert_idempotent(
    conn: &mut AsyncPgConnection,
    new: &NewRun,
) -> QueryResult<Inserted> {
    insert_row(conn, new, None).await
}

/// Inserts `new` already moved by its first transition `t`, decided before it
/// was written (a checkout started after its seats were gone): one row
/// version instead of an insert and an update, so no change to notify and no
/// funnel move to count. As [`insert_idempotent`], a key used before inserts
/// nothing and returns the earlier run.
pub async fn insert_decided(
    conn: &mut AsyncPgConnection,
    new: &NewRun,
    t: &Transition,
) -> QueryResult<Inserted> {
    insert_row(conn, new, Some(t)).await
}

async fn insert_row(
    conn: &mut AsyncPgConnection,
    new: &NewRun,
    first: Option<&Transition>,
) -> QueryResult<Inserted> {
    let created = diesel::insert_into(workflow_runs::table)
        .values(&NewRunRow::of(new, first))
        .on_conflict((
            workflow_runs::kind,
            workflow_runs::owner_id,
            workflow_runs::idempotency_key,
        ))
        .filter_target(workflow_runs::idempotency_key.is_not_null())
        .do_nothing()
        .returning(Run::as_returning())
        .keep_prepared()
        .get_result(conn)
        .await
        .optional()?;
    match created {
        Some(run) => Ok(Inserted::Created(run)),
        None => started_before(conn, new).await,
    }
}

/// The run that `new`'s key started before (an insert of `new` found it).
async fn started_before(conn: &mut AsyncPgConnection, new: &NewRun) -> QueryResult<Inserted> {
    let existing = by_idempotency_key(conn, &new.kind, new.owner_id, &new.idempotency_key)
        .await?
        .ok_or(diesel::result::Error::NotFound)?;
    Ok(Inserted::Existing(existing))
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

/// Creates a run and, in the same transaction, the message that starts it.
/// With an idempotency key already used by the owner for this kind, nothing is
/// created and the earlier run is returned.
pub async fn start(conn: &mut AsyncPgConnection, new: &NewRun) -> QueryResult<Inserted> {
    use diesel_async::AsyncConnection;
    conn.transaction::<_, diesel::result::Error, _>(async |conn| start_within(conn, new).await)
        .await
}

/// [`start`] inside the caller's transaction (which checks something first
/// under a lock, and commits both together).
pub async fn start_within(conn: &mut AsyncPgConnection, new: &NewRun) -> QueryResult<Inserted> {
    Ok(start_within_due(conn, new, None).await?.0)
}

/// [`start_within`], with the start message due at `due` (now when `None`):
/// the caller takes the run's first step itself and the message is its
/// backstop. Returns the message's id when a run was created.
pub async fn start_within_due(
    conn: &mut AsyncPgConnection,
    new: &NewRun,
    due: Option<DateTime<Utc>>,
) -> QueryResult<(Inserted, Option<i64>)> {
    let inserted = insert_idempotent(conn, new).await?;
    let message = match &inserted {
        Inserted::Created(run) => Some(push_start(conn, run.id, due).await?),
        Inserted::Existing(_) => None,
    };
    Ok((inserted, message))
}

/// The message that starts run `run_id`, due at `due` (now when `None`); its
/// id.
pub async fn push_start(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    due: Option<DateTime<Utc>>,
) -> QueryResult<i64> {
    crate::outbox::push(
        conn,
        crate::workflow_signals::ADVANCE_QUEUE,
        &crate::workflow_signals::AdvanceRun { run_id },
        due,
    )
    .await
}

/// Replaces the state and view of a run created in this very transaction
/// (its route completes it after inserting it); not a transition.
pub async fn set_initial_state(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    state: &serde_json::Value,
    view: &serde_json::Value,
) -> QueryResult<Run> {
    diesel::update(workflow_runs::table.find(id))
        .set((workflow_runs::state.eq(state), workflow_runs::view.eq(view)))
        .returning(Run::as_returning())
        .get_result(conn)
        .await
}

/// Creates a child run and the message that starts it, inside the parent's
/// transaction. `(parent, child key)` is unique: a child started before is
/// left as it is and `None` is returned.
pub async fn start_child(conn: &mut AsyncPgConnection, new: &NewRun) -> QueryResult<Option<Run>> {
    let created = diesel::insert_into(workflow_runs::table)
        .values(new)
        .on_conflict((workflow_runs::parent_id, workflow_runs::child_key))
        .filter_target(workflow_runs::parent_id.is_not_null())
        .do_nothing()
        .returning(Run::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if let Some(run) = &created {
        crate::outbox::push(
            conn,
            crate::workflow_signals::ADVANCE_QUEUE,
            &crate::workflow_signals::AdvanceRun { run_id: run.id },
            None,
        )
        .await?;
    }
    Ok(created)
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
    diesel::update(workflow_runs::table.find(id))
        .set((
            workflow_runs::status.eq("failed"),
            workflow_runs::last_error.eq(last_error),
            workflow_runs::version.eq(workflow_runs::version + 1),
            workflow_runs::updated_at.eq(diesel::dsl::now),
        ))
        .returning(workflow_runs::version)
        .get_result(conn)
        .await
}

/// Gives a parked run back the status it had (an operator retries it).
pub async fn unpark(conn: &mut AsyncPgConnection, id: Uuid, status: &str) -> QueryResult<i32> {
    diesel::update(workflow_runs::table.find(id))
        .set((
            workflow_runs::status.eq(status),
            workflow_runs::last_error.eq(None::<serde_json::Value>),
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
