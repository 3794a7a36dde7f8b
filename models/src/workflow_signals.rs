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
    /// Written by one of the run's steps (its timer) or for a signal: the
    /// run has taken its first step, so the worker does not read it ahead of
    /// its transaction to see whether it is about to hold seats (a start's
    /// hold is taken ahead, `engine::ahead`). Should the run not have
    /// started after all, its transaction takes the hold itself. Messages
    /// written without the field read as `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub past_start: bool,
}

impl AdvanceRun {
    /// Look at the run, which may be about to take its first step.
    pub fn look_at(run_id: Uuid) -> Self {
        AdvanceRun {
            run_id,
            past_start: false,
        }
    }

    /// Look at a run that has taken its first step (see `past_start`).
    pub fn past_start(run_id: Uuid) -> Self {
        AdvanceRun {
            run_id,
            past_start: true,
        }
    }
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
            &AdvanceRun::past_start(signal.run_id),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages queued before `past_start` existed still read, as starts;
    /// a start's message is written as it always was.
    #[test]
    fn a_message_without_past_start_reads_as_a_start_and_a_start_is_written_without_it() {
        let run_id = Uuid::now_v7();
        let old: AdvanceRun =
            serde_json::from_value(serde_json::json!({ "run_id": run_id })).unwrap();
        assert_eq!((old.run_id, old.past_start), (run_id, false));
        assert_eq!(
            serde_json::to_value(AdvanceRun::look_at(run_id)).unwrap(),
            serde_json::json!({ "run_id": run_id })
        );
        assert_eq!(
            serde_json::to_value(AdvanceRun::past_start(run_id)).unwrap(),
            serde_json::json!({ "run_id": run_id, "past_start": true })
        );
    }
}
