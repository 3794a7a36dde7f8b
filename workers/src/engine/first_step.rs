//! A new run's first step, taken by the process that started the run.
//!
//! A checkout's first step is its hold. Taken by the API process right after
//! the run is committed, the buyer's `POST` answers with the decision (seats
//! held until a deadline, or sold out) instead of a run to poll until a worker
//! gets to it, and the run's start costs no trip through the outbox, Redis and
//! a worker. The step is the engine's own advance: the same hold taken ahead
//! (through the process's [`HoldBatcher`]), the same transaction, the same
//! history. Its remote command (a paid checkout's payment intent) leaves
//! through the outbox (`Dispatch::Queue`), or, when the starting process calls
//! the payment provider itself, is handed back to the caller to carry out
//! right after the answer (`Dispatch::Inline`, with its delayed backstop
//! message; see `remote_calls`).
//!
//! The run's start message is written with the run, due only after
//! [`FIRST_STEP_GRACE`]: the backstop. The step's transaction deletes it. If
//! the step fails, a start message due at once takes its place; if the process
//! dies before either, the backstop comes due and a worker takes the step. A
//! worker that takes it as well finds the run past its start and does nothing.
//!
//! A run whose seats are gone already as it starts ([`refuse_if_sold_out`])
//! takes its step inside the transaction that creates it, before its row is
//! written: it is inserted ended sold out, with no hold to wait for, no start
//! message, and no update of the row it has just inserted. In a sale, most
//! buyers come after the last seat is held, and each of them cost three
//! commits and a place in the batch of holds to learn it.
//!
//! Runs started together by one transaction ([`take_together`]) take their
//! first steps in it: their seats are held in one statement per ticket type,
//! and each step is written with its outcome before that transaction
//! commits. They need no start message: the commit that creates them moves
//! them past their hold, or writes nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::Context;

use boxoffice_models::hold_batch::{self, Request};
use boxoffice_models::outbox;
use boxoffice_models::seats_left;
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::workflow_runs::{NewRun, Run};
use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::advance_io::{Advanced, Dispatch, Trigger};
use super::ahead::Ahead;
use super::executor::{
    Unwritten, advance_at, advance_collected, advance_unwritten, decide_unwritten,
};
use super::hold_batcher::HoldBatcher;
use super::messages::{ADVANCE_QUEUE, AdvanceRun};
pub use super::step_writes::DeferredWrites;
use super::step_writes::send_collected;
use crate::kinds;

/// How long a run started with its first step taken by its starter waits
/// before a worker takes the step instead: longer than a step takes under a
/// flood, so that the backstop is deleted unused in the normal case.
pub const FIRST_STEP_GRACE: chrono::Duration = chrono::Duration::seconds(20);

/// Takes the first step of `run`, created with its start message
/// `backstop_id` due after [`FIRST_STEP_GRACE`], and drops that message in
/// the step's transaction (`None`: a retry of the request that created the
/// run, which does not know the message; it finds nothing to do when it comes
/// due). On a failure the run is handed to the workers at once and the error
/// returned.
///
/// The hold is taken ahead through `batcher` (as a worker's step takes it),
/// then the step's transaction runs; its remote command leaves as `dispatch`
/// says. All of it on the caller's connection, the one that created the
/// run: a flood of new runs queues once for the pool, not once per statement,
/// and the first runs in are decided first. `batcher` must have a pool of its
/// own.
pub async fn take(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    batcher: &HoldBatcher,
    run: &Run,
    backstop_id: Option<i64>,
    dispatch: Dispatch,
) -> anyhow::Result<Advanced> {
    let now = Utc::now();
    let stepped = async {
        let ahead = super::ahead::take_on(conn, batcher, run, now).await?;
        conn.transaction::<_, anyhow::Error, _>(async |conn| {
            let advanced = advance_at(
                conn,
                signer,
                run.id,
                Trigger::Poke,
                now,
                ahead.as_ref(),
                dispatch,
            )
            .await?;
            if let Some(id) = backstop_id {
                outbox::delete_one(conn, id).await?;
            }
            Ok(advanced)
        })
        .await
    }
    .await;
    match stepped {
        Ok(advanced) => Ok(advanced),
        Err(e) => {
            // Inserted, not updated: an insert due at once wakes the relay.
            let message = AdvanceRun::look_at(run.id);
            if let Err(h) = outbox::push(conn, ADVANCE_QUEUE, &message, None).await {
                tracing::warn!(run_id = %run.id, error = %h, "the first step failed and the run waits for its backstop");
            }
            Err(e)
        }
    }
}

/// Decides `new`, a run about to be inserted on `conn` (inside the
/// transaction creating it), when the seats its first step would hold are
/// not there as of now (`seats_left::refused_now`): it is inserted already
/// ended sold out, as a refused hold would have ended it (the same decision
/// and history, through the engine's own advance), in one row version. `None`
/// when the step holds nothing or every line may still fit: then the caller
/// inserts the run, writes its start message and [`take`]s the step as
/// usual. A key that started a run before inserts nothing
/// ([`Unwritten::StartedBefore`]).
pub async fn refuse_if_sold_out(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    new: &NewRun,
) -> anyhow::Result<Option<Unwritten>> {
    let now = Utc::now();
    let run = new.unwritten(now);
    let Some((lines, _expires_at)) = kinds::of(&run.kind)?.first_hold(&run, now)? else {
        return Ok(None);
    };
    let Some(outcome) = seats_left::refused_now(conn, &lines).await? else {
        return Ok(None);
    };
    let refused = Ahead { lines, outcome };
    advance_unwritten(conn, signer, new, run, now, Some(&refused))
        .await
        .map(Some)
}

/// A start decided sold out before it was written, for its caller to insert
/// with the other starts of its batch.
#[derive(Debug)]
pub struct DecidedUnwritten {
    /// Where the step left the run (its version is the insert's).
    pub advanced: Advanced,
    /// What the run's insert and its history must carry.
    pub writes: DeferredWrites,
}

/// [`refuse_if_sold_out`] for a start gathered with others: decides `new`
/// with `left` (what is left of its ticket types, as
/// `seats_left::left_for_public` read it in the caller's transaction) and
/// writes nothing; `None` when the step holds nothing or every line may
/// still fit. The caller inserts the run moved by
/// [`DeferredWrites::transition`], and its history.
pub async fn decide_if_sold_out(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    new: &NewRun,
    left: &[(Uuid, i32)],
) -> anyhow::Result<Option<DecidedUnwritten>> {
    let now = Utc::now();
    let run = new.unwritten(now);
    let Some((lines, _expires_at)) = kinds::of(&run.kind)?.first_hold(&run, now)? else {
        return Ok(None);
    };
    let Some(outcome) = seats_left::refused_by(left, &lines) else {
        return Ok(None);
    };
    let refused = Ahead { lines, outcome };
    let (advanced, writes) = decide_unwritten(conn, signer, run, now, Some(&refused)).await?;
    Ok(Some(DecidedUnwritten { advanced, writes }))
}

/// The first steps of `runs`, started together and inserted as started by
/// the caller's transaction on `conn`, taken in that same transaction: their
/// seats are held together, one statement per ticket type
/// (`hold_batch::hold_many`, first come, first served in the order of
/// `runs`), and each run then takes its step with its outcome, as a step
/// takes a hold taken ahead. The caller's commit writes them held (or sold
/// out, if another process took the seats first), with no start message and
/// no transaction of their own. One answer per run, in order; `None` for a
/// run whose step holds more than one ticket type, holds nothing, or finds a
/// hold of its own already: the caller starts it as usual ([`take`]).
///
/// The types' row locks last until the caller's commit. They are taken in
/// the order of the types' ids, so that two batches never wait on each
/// other's. A remote command issued with [`Dispatch::Inline`] is the
/// caller's to carry out once it has committed, never before: until then
/// the run does not exist for anyone else.
pub async fn take_together(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    runs: &[Run],
    dispatch: Dispatch,
) -> anyhow::Result<Vec<Option<Advanced>>> {
    let now = Utc::now();
    let mut by_type: BTreeMap<Uuid, Vec<(usize, Request)>> = BTreeMap::new();
    for (i, run) in runs.iter().enumerate() {
        let Some((held, expires_at)) = kinds::of(&run.kind)?.first_hold(run, now)? else {
            continue;
        };
        let [line] = held.as_slice() else {
            continue;
        };
        let request = Request {
            run_id: run.id,
            quantity: line.quantity,
            expires_at,
        };
        by_type
            .entry(line.ticket_type_id)
            .or_default()
            .push((i, request));
    }
    let mut aheads: Vec<Option<Ahead>> = runs.iter().map(|_| None).collect();
    for (ticket_type_id, waiting) in by_type {
        let requests: Vec<Request> = waiting.iter().map(|(_, r)| *r).collect();
        let answers = hold_batch::hold_many(conn, ticket_type_id, &requests).await?;
        for ((i, request), answer) in waiting.into_iter().zip(answers) {
            if let Some(outcome) = answer.outcome(ticket_type_id, request.quantity) {
                let lines = vec![request.line(ticket_type_id)];
                aheads[i] = Some(Ahead { lines, outcome });
            }
        }
    }
    // Each step decided in turn, its writes collected; then all of them sent
    // in one round trip.
    let mut decided: Vec<Option<Advanced>> = Vec::with_capacity(runs.len());
    let mut collected = Vec::new();
    for (run, ahead) in runs.iter().zip(aheads) {
        let Some(ahead) = ahead else {
            decided.push(None);
            continue;
        };
        let slot = Mutex::new(None);
        let stepped = advance_collected(
            conn,
            signer,
            run.clone(),
            now,
            Some(&ahead),
            dispatch,
            &slot,
        );
        decided.push(Some(stepped.await?));
        let writes = slot
            .into_inner()
            .map_err(|_| anyhow::anyhow!("the collected writes' slot was poisoned"))?
            .with_context(|| format!("run {} did not move with its hold", run.id))?;
        collected.push(writes);
    }
    let sent = send_collected(conn, &collected).await?;
    let mut written = collected.into_iter().zip(sent);
    Ok(decided
        .into_iter()
        .map(|advanced| {
            let advanced = advanced?;
            let (writes, sent) = written.next()?;
            let (queued, issued) =
                dispatch.of(writes.effect.map(|(effect, _)| effect), sent.backstop_id);
            Some(Advanced {
                queued: queued || writes.timer.is_some(),
                version: Some(sent.version),
                issued,
                ..advanced
            })
        })
        .collect())
}
