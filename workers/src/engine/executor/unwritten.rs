//! A run's first step taken before its row is written: inserted as the step
//! leaves it by the advance itself, or left to the caller with what its
//! insert must carry (a batch of starts inserts its runs together).

use anyhow::Context;
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::workflow_runs::{NewRun, Run};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;

use super::super::advance_io::{Advanced, Dispatch, Trigger};
use super::super::ahead::Ahead;
use super::super::step_writes::{DeferredWrites, RunRow, StartedBefore};
use super::At;
use crate::kinds;

/// What became of a run advanced before it was written.
pub enum Unwritten {
    /// Inserted as the advance left it.
    Inserted(Advanced),
    /// Its idempotency key had started this run before: nothing was written.
    StartedBefore(Box<Run>),
}

/// Takes the first step of `new` before it is written, inside the caller's
/// transaction, and inserts it as that step leaves it: one row version, no
/// update of a row just inserted. `run` is `new` as its insert would write it
/// at `now` ([`NewRun::unwritten`]). Its remote command, if any, leaves
/// through the outbox.
pub(in crate::engine) async fn advance_unwritten(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    new: &NewRun,
    run: Run,
    now: DateTime<Utc>,
    ahead: Option<&Ahead>,
) -> anyhow::Result<Unwritten> {
    let at = At {
        now,
        ahead,
        dispatch: Dispatch::Queue,
        row: RunRow::Unwritten(new),
    };
    let advanced = kinds::of(&run.kind)?
        .advance(conn, signer, run, Trigger::Poke, at)
        .await;
    match advanced {
        Ok(advanced) => Ok(Unwritten::Inserted(advanced)),
        Err(e) => match e.downcast::<StartedBefore>() {
            Ok(StartedBefore(run)) => Ok(Unwritten::StartedBefore(Box::new(run))),
            Err(e) => Err(e),
        },
    }
}

/// Takes the first step of `run`, not written yet ([`NewRun::unwritten`]),
/// without writing anything: where it leaves the run, and what the run's
/// insert must carry. The caller inserts it (with others' of its batch).
/// Fails when the step does more than decide (issues a command, sets a timer,
/// starts a child): such a run is started the usual way.
pub(in crate::engine) async fn decide_unwritten(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    run: Run,
    now: DateTime<Utc>,
    ahead: Option<&Ahead>,
) -> anyhow::Result<(Advanced, DeferredWrites)> {
    let slot = std::sync::Mutex::new(None);
    let at = At {
        now,
        ahead,
        dispatch: Dispatch::Queue,
        row: RunRow::Deferred(&slot),
    };
    let advanced = kinds::of(&run.kind)?
        .advance(conn, signer, run, Trigger::Poke, at)
        .await?;
    let writes = slot
        .into_inner()
        .map_err(|_| anyhow::anyhow!("the deferred writes' slot was poisoned"))?
        .context("a run decided before it was written left no writes")?;
    Ok((advanced, writes))
}
