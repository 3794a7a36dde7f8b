//! Starts the reminder runs of published events: one run per event and
//! offset, once its time is less than [`PLAN_AHEAD`] away (see
//! `models::reminders::missing` for the reminders missed during an outage).
//! The run then waits for its time in Postgres (its `wake_at`). Planning
//! shortly ahead keeps the waiting runs few (the events of the next hour,
//! not of the next year) and lets an event move freely until then; a run
//! planned moves with its event (see the event routes).
//!
//! Planning here rather than in the routes covers every way an event comes to
//! need a reminder (published, moved, given another offset, or published
//! before reminders existed) with one path. The `(event, offset)` row is
//! claimed in the transaction that creates the run, so two planners (one per
//! worker process) never start two runs for it.

use apalis::prelude::{BoxDynError, Data};
use boxoffice_models::reminders;
use boxoffice_models::workflow_runs::{self, NewRun};
use boxoffice_workflows::engine::{RunStatus, Workflow};
use boxoffice_workflows::reminder::{MailingState, Reminder};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::deps::JobDeps;

pub const JOB_NAME: &str = "plan_reminders";

/// Reminders planned per pass (the next tick takes the rest).
const BATCH: i64 = 500;

/// How long before its time a reminder's run is started: far more than a
/// planning tick (every 10 s by default) or a short outage.
pub const PLAN_AHEAD: chrono::Duration = chrono::Duration::hours(1);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanReminders {
    pub scheduled_for: DateTime<Utc>,
}

pub async fn run(_job: PlanReminders, deps: Data<JobDeps>) -> Result<(), BoxDynError> {
    let planned = plan(&deps).await?;
    if planned > 0 {
        deps.relay_nudge.notify_one();
        tracing::info!(job = JOB_NAME, planned, "reminders planned");
    }
    Ok(())
}

/// Starts the missing reminder runs; how many it started.
pub async fn plan(deps: &JobDeps) -> anyhow::Result<usize> {
    let mut conn = deps.db.get().await?;
    let now = Utc::now();
    let missing = reminders::missing(&mut conn, now, now + PLAN_AHEAD, BATCH).await?;
    let mut planned = 0;
    for reminder in missing {
        let run_id = Uuid::now_v7();
        let started = conn
            .transaction::<_, anyhow::Error, _>(async |conn| {
                // Read again under a share lock: the event may have moved
                // since the list was read.
                let Some(event) = reminders::lock_for_planning(conn, reminder.event_id).await?
                else {
                    return Ok(false);
                };
                if event.status != "published" || !event.offsets.contains(&reminder.offset_minutes)
                {
                    return Ok(false);
                }
                let state = MailingState::reminder(
                    reminder.event_id,
                    reminder.offset_minutes,
                    event.starts_at,
                );
                if !reminders::claim(conn, reminder.event_id, reminder.offset_minutes, run_id)
                    .await?
                {
                    return Ok(false); // another planner got there first
                }
                let new = NewRun {
                    id: run_id,
                    kind: Reminder::KIND.into(),
                    status: RunStatus::Running.as_str().into(),
                    step: Reminder::initial_step().into(),
                    state: serde_json::to_value(&state)?,
                    correlation_id: None,
                    owner_id: Some(reminder.organizer_id),
                    idempotency_key: None,
                    request_hash: None,
                    view: serde_json::to_value(Reminder::view(&state))?,
                    parent_id: None,
                    child_key: None,
                };
                workflow_runs::start_within(conn, &new).await?;
                Ok(true)
            })
            .await?;
        if started {
            planned += 1;
            metrics::counter!("workflows_started_total", "kind" => Reminder::KIND).increment(1);
        }
    }
    Ok(planned)
}
