//! New runs: a run as its route or its parent starts it, inserted once per
//! idempotency key (or child key), with the message that starts it; or, when
//! its first step is decided before it is written, inserted as that step
//! leaves it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{Run, Transition, by_idempotency_key};
use crate::prepared::KeepPrepared;
use crate::schema::workflow_runs;

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
        self.as_started(1, now, now)
    }

    /// The run as [`insert_many`] inserted it as started: what was sent,
    /// with what the database filled in (`stamped`).
    pub fn inserted_as(&self, stamped: &Stamped) -> Run {
        self.as_started(stamped.version, stamped.created_at, stamped.updated_at)
    }

    fn as_started(
        &self,
        version: i32,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Run {
        Run {
            id: self.id,
            kind: self.kind.clone(),
            status: self.status.clone(),
            step: self.step.clone(),
            state: self.state.clone(),
            version,
            wake_at: None,
            pending_effect: None,
            attempts: 0,
            last_error: None,
            correlation_id: self.correlation_id.clone(),
            owner_id: self.owner_id,
            idempotency_key: self.idempotency_key.clone(),
            request_hash: self.request_hash.clone(),
            created_at,
            updated_at,
            finished_at: None,
            view: self.view.clone(),
            parent_id: self.parent_id,
            child_key: self.child_key.clone(),
        }
    }
}

/// What the database fills in of a run [`insert_many`] inserts: its version
/// and times (the table's defaults). Every other column is what was sent, as
/// no trigger before the insert changes it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = workflow_runs, check_for_backend(diesel::pg::Pg))]
pub struct Stamped {
    pub id: Uuid,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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

/// Inserts several new runs in one statement, each as started or moved by its
/// first transition (as [`insert_idempotent`] and [`insert_decided`] do one
/// by one), and returns what the database filled in of each row inserted
/// ([`NewRun::inserted_as`] makes a started one's run of it). A run whose
/// key started one before (or whose key another row of the same call took)
/// is not inserted and not returned: the caller looks for what it misses.
///
/// Not the whole rows: the caller has them already, and a batch of 256 runs
/// sent its states and views back as JSON text, to be parsed again, while
/// the buyers of the batch waited for its commit.
pub async fn insert_many(
    conn: &mut AsyncPgConnection,
    news: &[(&NewRun, Option<&Transition>)],
) -> QueryResult<Vec<Stamped>> {
    if news.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<NewRunRow<'_>> = news
        .iter()
        .map(|&(new, first)| NewRunRow::of(new, first))
        .collect();
    // Not kept prepared: its text changes with the number of rows.
    diesel::insert_into(workflow_runs::table)
        .values(&rows)
        .on_conflict((
            workflow_runs::kind,
            workflow_runs::owner_id,
            workflow_runs::idempotency_key,
        ))
        .filter_target(workflow_runs::idempotency_key.is_not_null())
        .do_nothing()
        .returning(Stamped::as_returning())
        .get_results(conn)
        .await
}

/// The run that `new`'s key started before (an insert of `new` found it).
async fn started_before(conn: &mut AsyncPgConnection, new: &NewRun) -> QueryResult<Inserted> {
    let existing = by_idempotency_key(conn, &new.kind, new.owner_id, &new.idempotency_key)
        .await?
        .ok_or(diesel::result::Error::NotFound)?;
    Ok(Inserted::Existing(existing))
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
        &crate::workflow_signals::AdvanceRun::look_at(run_id),
        due,
    )
    .await
}

/// [`push_start`] for several runs in one statement, all due at `due`:
/// each run's id with its message's.
pub async fn push_starts(
    conn: &AsyncPgConnection,
    run_ids: &[Uuid],
    due: Option<DateTime<Utc>>,
) -> QueryResult<Vec<(Uuid, i64)>> {
    let messages: Vec<_> = run_ids
        .iter()
        .map(|&run_id| crate::workflow_signals::AdvanceRun::look_at(run_id))
        .collect();
    let pushed =
        crate::outbox::push_all(conn, crate::workflow_signals::ADVANCE_QUEUE, &messages, due)
            .await?;
    Ok(pushed
        .into_iter()
        .map(|(id, message)| (message.run_id, id))
        .collect())
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
            &crate::workflow_signals::AdvanceRun::look_at(run.id),
            None,
        )
        .await?;
    }
    Ok(created)
}
