//! Where an advance starts: by the run's id in a transaction of its own (the
//! jobs' and the API's way), inside the caller's transaction, or on a row
//! that transaction holds already; each comes down to the kind's
//! advance of a locked row (`advance_locked`).

use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::workflow_runs::{self, Run};
use boxoffice_models::{DbPool, outbox};
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::super::advance_io::{Advanced, Dispatch, Trigger};
use super::super::ahead::Ahead;
use super::super::hold_batcher::HoldBatcher;
use super::super::step_writes::RunRow;
use super::At;
use crate::kinds;

/// Advances `run_id` in one transaction (see the module docs of `engine`).
/// A hold the run is about to take is taken first, on its own (see `ahead`).
pub async fn advance(
    db: &DbPool,
    signer: &TicketSigner,
    run_id: Uuid,
    trigger: Trigger,
    dispatch: Dispatch,
) -> anyhow::Result<Advanced> {
    advance_holding(db, signer, None, run_id, trigger, dispatch, None).await
}

/// [`advance`], with the hold taken ahead through this process's
/// [`HoldBatcher`] (the jobs' way), and the outbox message `dropping` deleted
/// in the same transaction: the backstop of the remote command whose outcome
/// `trigger` feeds to the run is gone exactly when the run has taken it, in
/// one commit instead of two.
pub async fn advance_holding(
    db: &DbPool,
    signer: &TicketSigner,
    batcher: Option<&HoldBatcher>,
    run_id: Uuid,
    trigger: Trigger,
    dispatch: Dispatch,
    dropping: Option<i64>,
) -> anyhow::Result<Advanced> {
    let now = Utc::now();
    let ahead = crate::engine::ahead::take(db, batcher, run_id, &trigger, now).await?;
    let mut conn = db.get().await?;
    conn.transaction::<_, anyhow::Error, _>(async |conn| {
        let advanced =
            advance_at(conn, signer, run_id, trigger, now, ahead.as_ref(), dispatch).await?;
        if let Some(id) = dropping {
            outbox::delete_one(conn, id).await?;
        }
        Ok(advanced)
    })
    .await
}

/// A poke of a run that has taken its first step (`AdvanceRun::past_start`:
/// a signal's delivery, a timer), in one transaction: nothing is read ahead
/// of it, since only a start takes its hold ahead. A run that had not
/// started after all takes its hold inside the transaction.
pub async fn advance_past_start(
    db: &DbPool,
    signer: &TicketSigner,
    run_id: Uuid,
    dispatch: Dispatch,
) -> anyhow::Result<Advanced> {
    let now = Utc::now();
    let mut conn = db.get().await?;
    conn.transaction::<_, anyhow::Error, _>(async |conn| {
        advance_at(conn, signer, run_id, Trigger::Poke, now, None, dispatch).await
    })
    .await
}

/// [`advance`] inside the caller's transaction (operator actions write their
/// audit row in the same transaction).
pub async fn advance_on(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    run_id: Uuid,
    trigger: Trigger,
) -> anyhow::Result<Advanced> {
    advance_at(
        conn,
        signer,
        run_id,
        trigger,
        Utc::now(),
        None,
        Dispatch::Queue,
    )
    .await
}

pub(in crate::engine) async fn advance_at(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    run_id: Uuid,
    trigger: Trigger,
    now: DateTime<Utc>,
    ahead: Option<&Ahead>,
    dispatch: Dispatch,
) -> anyhow::Result<Advanced> {
    let Some(run) = workflow_runs::lock(conn, run_id).await? else {
        return Ok(Advanced::default());
    };
    advance_run(conn, signer, run, trigger, now, ahead, dispatch).await
}

/// Advances `run`, a row the caller's transaction already holds: locked by
/// [`advance_at`], or inserted by that very transaction (no other
/// transaction sees it before the commit, so there is nothing to lock it
/// against, and the row is the one just written).
pub(super) async fn advance_run(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    run: Run,
    trigger: Trigger,
    now: DateTime<Utc>,
    ahead: Option<&Ahead>,
    dispatch: Dispatch,
) -> anyhow::Result<Advanced> {
    let at = At {
        now,
        ahead,
        dispatch,
        row: RunRow::Stored,
    };
    kinds::of(&run.kind)?
        .advance(conn, signer, run, trigger, at)
        .await
}

/// [`advance_run`] of a run whose writes are left in a slot for the caller
/// to send with other runs': one the caller's transaction inserted
/// ([`RunRow::Collected`]), or one it inserts as the advance leaves it
/// ([`RunRow::Unstored`]). The advance's answer has no version and no
/// command handed over until they are sent.
pub(in crate::engine) async fn advance_collected(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    run: Run,
    now: DateTime<Utc>,
    ahead: Option<&Ahead>,
    dispatch: Dispatch,
    row: RunRow<'_>,
) -> anyhow::Result<Advanced> {
    debug_assert!(matches!(row, RunRow::Collected(_) | RunRow::Unstored(_)));
    let at = At {
        now,
        ahead,
        dispatch,
        row,
    };
    kinds::of(&run.kind)?
        .advance(conn, signer, run, Trigger::Poke, at)
        .await
}
