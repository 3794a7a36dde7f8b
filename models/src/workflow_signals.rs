//! `workflow_signals`: outside events for a run, stored before delivery.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::prepared::KeepPrepared;
use crate::schema::{workflow_runs, workflow_signals};

/// The queue that carries "look at run R" messages.
pub const ADVANCE_QUEUE: &str = "advance_run";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = workflow_signals)]
pub struct Signal {
    pub id: i64,
    pub run_id: Uuid,
    pub name: String,
    pub dedupe_key: String,
    pub payload: serde_json::Value,
    pub received_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewSignal {
    pub run_id: Uuid,
    /// What happened, in the workflow's vocabulary (e.g. `payment_succeeded`).
    pub name: String,
    /// Unique per delivery source (e.g. `stripe:evt_123`): a repeat is a no-op.
    pub dedupe_key: String,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored, and the run will be told.
    New,
    /// Seen before: nothing changed.
    Duplicate,
    /// No run with that id.
    UnknownRun,
}

/// The message that asks a worker to look at a run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AdvanceRun {
    pub run_id: Uuid,
}

/// Stores the signal and, in the same transaction, queues a message that makes a
/// worker deliver it. Safe to call any number of times with the same dedupe key.
pub async fn record(conn: &mut AsyncPgConnection, signal: NewSignal) -> QueryResult<Recorded> {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        let run_exists: bool = diesel::select(diesel::dsl::exists(
            workflow_runs::table.find(signal.run_id),
        ))
        .get_result(conn)
        .await?;
        if !run_exists {
            return Ok(Recorded::UnknownRun);
        }
        let inserted = diesel::insert_into(workflow_signals::table)
            .values((
                workflow_signals::run_id.eq(signal.run_id),
                workflow_signals::name.eq(&signal.name),
                workflow_signals::dedupe_key.eq(&signal.dedupe_key),
                workflow_signals::payload.eq(&signal.payload),
            ))
            .on_conflict(workflow_signals::dedupe_key)
            .do_nothing()
            .keep_prepared()
            .execute(conn)
            .await?;
        if inserted == 0 {
            return Ok(Recorded::Duplicate);
        }
        crate::outbox::push(
            conn,
            ADVANCE_QUEUE,
            &AdvanceRun {
                run_id: signal.run_id,
            },
            None,
        )
        .await?;
        Ok(Recorded::New)
    })
    .await
}

/// The run's signals not yet consumed, oldest first; locked (call in a transaction).
pub async fn pending_for_run(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
) -> QueryResult<Vec<Signal>> {
    workflow_signals::table
        .filter(workflow_signals::run_id.eq(run_id))
        .filter(workflow_signals::consumed_at.is_null())
        .order(workflow_signals::id.asc())
        .for_update()
        .select(Signal::as_select())
        .load(conn)
        .await
}

pub async fn mark_consumed(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<()> {
    diesel::update(workflow_signals::table.find(id))
        .set(workflow_signals::consumed_at.eq(diesel::dsl::now))
        .keep_prepared()
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn list_for_run(conn: &mut AsyncPgConnection, run_id: Uuid) -> QueryResult<Vec<Signal>> {
    workflow_signals::table
        .filter(workflow_signals::run_id.eq(run_id))
        .order(workflow_signals::id.asc())
        .select(Signal::as_select())
        .load(conn)
        .await
}

/// Runs that can take a signal (waiting, or finished but able to react to a late
/// payment) and have had one pending since before `before`: its delivery message
/// was lost (e.g. Redis lost its data), so the sweep delivers it.
pub async fn undelivered_runs(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Uuid>> {
    workflow_signals::table
        .inner_join(workflow_runs::table)
        .filter(workflow_signals::consumed_at.is_null())
        .filter(workflow_signals::received_at.lt(before))
        .filter(workflow_runs::status.eq_any(["waiting", "completed", "compensated"]))
        .select(workflow_signals::run_id)
        .distinct()
        .limit(limit)
        .load(conn)
        .await
}
