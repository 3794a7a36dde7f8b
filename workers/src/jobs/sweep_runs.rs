//! The engine's backstops, run on a schedule, for messages lost between the
//! outbox and a worker (e.g. Redis restarted without its data): wake waiting
//! runs whose deadline passed, offer freed units to waitlists (see
//! `dispatch_waitlists`), deliver signals that have waited too long,
//! re-drive running runs that have not moved for too long, give back holds of
//! runs that ended without recording them (see `engine::ahead`), and queue
//! again the emails of pending notifications that have not moved for as long.
//! Idempotent: advancing a run that has nothing to do changes nothing, and a
//! notification is sent once however many `send_email` jobs it gets.

use std::collections::BTreeSet;

use apalis::prelude::{BoxDynError, Data};
use boxoffice_models::{holds, notifications, workflow_runs, workflow_signals};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::deps::JobDeps;
use crate::engine::ahead::release_orphaned;
use crate::engine::resend::redrive;
use crate::engine::{Dispatch, Trigger, advance_holding};

pub const JOB_NAME: &str = "sweep_runs";

/// The default of `JobDeps::stalled_after`: a run that has not moved for this
/// long is taken for stalled. Longer than any single step takes, so a live step
/// is never re-driven under its feet (a re-drive of a live step is harmless, but
/// duplicates work).
pub const STALLED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);
const BATCH: i64 = 500;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRuns {
    pub scheduled_for: DateTime<Utc>,
}

/// A sweep taking longer is abandoned and fails (the next tick sweeps again):
/// one stuck call must not hold the sweep worker, and so every later sweep.
const SWEEP_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

pub async fn run(_job: SweepRuns, deps: Data<JobDeps>) -> Result<(), BoxDynError> {
    tokio::time::timeout(SWEEP_LIMIT, sweep(&deps))
        .await
        .map_err(|_| format!("the sweep took longer than {SWEEP_LIMIT:?}; abandoned"))?
}

async fn sweep(deps: &JobDeps) -> Result<(), BoxDynError> {
    let now = Utc::now();
    let stalled_after = chrono::Duration::from_std(deps.stalled_after)
        .or_else(|_| chrono::Duration::from_std(STALLED_AFTER))?;
    let (overdue, expired, undelivered, stalled, orphaned) = {
        let mut conn = deps.db.get().await?;
        (
            workflow_runs::overdue(&mut conn, now, BATCH).await?,
            holds::expired_runs(&mut conn, now, BATCH).await?,
            workflow_signals::undelivered_runs(&mut conn, now - stalled_after, BATCH).await?,
            workflow_runs::stalled(&mut conn, now - stalled_after, BATCH).await?,
            holds::orphaned_runs(&mut conn, BATCH).await?,
        )
    };
    // One run that cannot be advanced (a poison run, parked by its own job)
    // must not keep the sweep from every other run: log it and go on.
    // A checkout waiting past its deadline is both overdue and expired: once.
    let to_wake: BTreeSet<Uuid> = overdue
        .into_iter()
        .chain(expired)
        .chain(undelivered)
        .collect();
    let mut woken = 0;
    for run_id in &to_wake {
        match advance_holding(
            &deps.db,
            &deps.ticket_signer,
            Some(&deps.holds),
            *run_id,
            Trigger::Poke,
            Dispatch::Queue,
            None,
        )
        .await
        {
            Ok(advanced) if advanced.changed => woken += 1,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(run_id = %run_id, error = %error, "sweep could not advance run")
            }
        }
    }
    let mut redriven = 0;
    for run_id in &stalled {
        match redrive(&deps.db, *run_id).await {
            Ok(true) => redriven += 1,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(run_id = %run_id, error = %error, "sweep could not re-drive run")
            }
        }
    }
    for run_id in &orphaned {
        match release_orphaned(&deps.db, *run_id).await {
            Ok(released) if released > 0 => {
                tracing::warn!(run_id = %run_id, released, "sweep released holds of an ended run")
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(run_id = %run_id, error = %error, "sweep could not release holds")
            }
        }
    }
    // Units freed since the last tick go to the waitlists' next entries.
    let offers = match super::dispatch_waitlists::dispatch(&deps.db, deps.waitlist_head_wait).await
    {
        Ok(offers) => offers,
        Err(error) => {
            tracing::warn!(error = %error, "sweep could not dispatch waitlists");
            0
        }
    };
    let emails_requeued = {
        let mut conn = deps.db.get().await?;
        notifications::requeue_stalled(&mut conn, now - stalled_after, BATCH).await? as u64
    };
    if woken + redriven + emails_requeued + offers > 0 {
        deps.relay_nudge.notify_one();
        tracing::info!(
            woken,
            redriven,
            emails_requeued,
            offers,
            "sweep moved runs and emails"
        );
    }
    metrics::counter!("sweep_runs_woken_total").increment(woken);
    metrics::counter!("sweep_runs_redriven_total").increment(redriven);
    metrics::counter!("sweep_emails_requeued_total").increment(emails_requeued);
    Ok(())
}
