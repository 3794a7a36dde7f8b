//! The input a run takes when its advance has nothing else to do: a pending
//! signal (a child's end is one), or its due timer.

use anyhow::Context;
use boxoffice_models::workflow_signals;
use boxoffice_workflows::engine::{ChildEnd, Input, RunStatus};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::super::messages::CHILD_ENDED_SIGNAL;
use super::Current;

/// With nothing else to do, a waiting or finished run takes its next pending
/// signal (kept if it arrived early; a child's end is one), or a waiting run
/// its due timer. With `no_signals` (the run cannot have any yet) it reads
/// none.
pub(super) async fn waiting_input<L, R, S, C>(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    cur: &Current<S, C>,
    now: DateTime<Utc>,
    timer_fed: &mut bool,
    no_signals: bool,
) -> anyhow::Result<Option<Input<L, R>>> {
    // A running or compensating run is busy with a command: signals wait for it.
    if !no_signals
        && matches!(
            cur.status,
            RunStatus::Waiting | RunStatus::Completed | RunStatus::Compensated
        )
        && let Some(signal) = workflow_signals::pending_for_run(conn, run_id)
            .await?
            .into_iter()
            .next()
    {
        workflow_signals::mark_consumed(conn, signal.id).await?;
        if signal.name == CHILD_ENDED_SIGNAL {
            let end: ChildEnd =
                serde_json::from_value(signal.payload).context("decoding a child's end")?;
            return Ok(Some(Input::ChildEnded(end)));
        }
        return Ok(Some(Input::Signal {
            name: signal.name,
            payload: signal.payload,
        }));
    }
    if cur.status == RunStatus::Waiting && !*timer_fed && cur.wake_at.is_some_and(|w| w <= now) {
        *timer_fed = true;
        return Ok(Some(Input::Timer));
    }
    Ok(None)
}
