//! The hold, taken ahead of the run's transaction.
//!
//! A step is one transaction, and a row lock taken inside it lasts until the
//! commit. Every checkout of a hot ticket type takes that type's row lock to
//! hold seats; inside the step, the lock would also cover the run's history,
//! its new state and its outbox message, and holds on the type would be
//! serialised at the pace of whole steps. So when a run is about to hold, the
//! hold is taken first, on its own (`holds::hold`: one statement, the
//! lock lasts for it and its commit), and the step's transaction then uses that
//! outcome instead of taking the hold itself.
//!
//! The hold belongs to the run from its commit on, whatever happens to the
//! step: the step's next attempt adopts it (`holds::hold` is idempotent per
//! run), the run's compensation releases it, and the sweep releases it if the
//! run ended without ever recording it (`holds::orphaned_runs`).

use boxoffice_models::DbPool;
use boxoffice_models::holds::{self, HoldOutcome, Line};
use boxoffice_models::workflow_runs::{self, Run};
use boxoffice_workflows::engine::RunStatus;
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::advance_io::Trigger;
use super::hold_batcher::HoldBatcher;
use crate::kinds;

/// A hold taken for a run ahead of its step, and what came of it.
#[derive(Debug, Clone)]
pub struct Ahead {
    pub lines: Vec<Line>,
    pub outcome: HoldOutcome,
}

impl Ahead {
    /// The outcome, if it answers this very hold.
    pub fn outcome_for(&self, lines: &[Line]) -> Option<&HoldOutcome> {
        (self.lines == lines).then_some(&self.outcome)
    }
}

/// Takes the hold the run's step is about to take, if it is about to take
/// one. `now` must be the step's own clock: the step decides again with it and
/// must come to the same hold.
///
/// One line is held through `batcher`, with the other runs of this process
/// holding the same ticket type (see `hold_batcher`); no connection is kept
/// while it waits, so waiting runs never starve the batch of one.
pub async fn take(
    db: &DbPool,
    batcher: Option<&HoldBatcher>,
    run_id: Uuid,
    trigger: &Trigger,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Ahead>> {
    // Only a poke starts a run; any other trigger finds it past its hold.
    if !matches!(trigger, Trigger::Poke) {
        return Ok(None);
    }
    // Read without a lock: a stale read at worst takes a hold that the run
    // then adopts or releases (see the module docs).
    let Some(run) = workflow_runs::find(&mut *db.get().await?, run_id).await? else {
        return Ok(None);
    };
    let Some((lines, expires_at)) = kinds::of(&run.kind)?.first_hold(&run, now)? else {
        return Ok(None);
    };
    let outcome = match (batcher, lines.as_slice()) {
        (Some(batcher), [line]) => batcher.hold(run_id, *line, expires_at).await?,
        _ => holds::hold(&mut *db.get().await?, run_id, &lines, expires_at).await?,
    };
    Ok(Some(Ahead { lines, outcome }))
}

/// [`take`] for a run its caller just created (or read), on the caller's
/// connection, which it keeps while `batcher` holds: the batcher must draw
/// its connections from another pool, or callers holding every connection
/// would starve the statement they wait for.
pub async fn take_on(
    conn: &mut AsyncPgConnection,
    batcher: &HoldBatcher,
    run: &Run,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Ahead>> {
    let Some((lines, expires_at)) = kinds::of(&run.kind)?.first_hold(run, now)? else {
        return Ok(None);
    };
    let outcome = match lines.as_slice() {
        [line] => batcher.hold(run.id, *line, expires_at).await?,
        _ => holds::hold(conn, run.id, &lines, expires_at).await?,
    };
    Ok(Some(Ahead { lines, outcome }))
}

/// Gives back the active holds of a run that ended without recording them
/// (found by `holds::orphaned_runs`). Checked again under the run's lock.
pub async fn release_orphaned(db: &DbPool, run_id: Uuid) -> anyhow::Result<i32> {
    let mut conn = db.get().await?;
    conn.transaction::<_, anyhow::Error, _>(async |conn| {
        let Some(run) = workflow_runs::lock(conn, run_id).await? else {
            return Ok(0);
        };
        let ended = RunStatus::parse(&run.status).is_some_and(RunStatus::is_ended);
        if !ended {
            return Ok(0);
        }
        Ok(holds::release_for_run(conn, run_id).await?)
    })
    .await
}
