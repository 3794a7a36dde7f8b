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
//! and each run is inserted as its step leaves it before that transaction
//! commits. They need no start message: the commit that creates them moves
//! them past their hold, or writes nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use anyhow::Context;

use boxoffice_models::hold_batch::{self, Request};
use boxoffice_models::holds::HoldOutcome;
use boxoffice_models::outbox;
use boxoffice_models::seats_left;
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::workflow_runs::{self, NewRun, Run, Stamped, Transition};
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
use super::step_writes::{CollectedWrites, NeedsRow, RunRow, send_collected};
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

/// What became of a run started with others ([`take_together`]).
#[derive(Debug)]
pub enum Together {
    /// Inserted past its first step.
    Stepped(Advanced),
    /// Inserted as started: its step holds more than one ticket type, or
    /// nothing; the caller writes its start message and takes it as usual
    /// ([`take`]).
    Started(Box<Run>),
    /// Not inserted: its idempotency key had started a run before.
    NotInserted,
}

/// The first steps of `news`, runs started together by the caller's
/// transaction on `conn`, taken in that same transaction, which inserts
/// them: their seats are held together, one statement per ticket type
/// (`hold_batch::hold_many`, first come, first served in the order of
/// `news`), each run then takes its step with its outcome, as a step takes a
/// hold taken ahead, and is inserted as its step leaves it (or as started,
/// when its step is left to [`take`]). The caller's commit writes them held
/// (or sold out, if another process took the seats first), with no start
/// message and no transaction of their own. One answer per run, in order.
///
/// Each run is written once: held first and inserted after, its hold's
/// check that the run exists waits for the commit. A batch of 256 winners
/// inserted as started and then moved was 256 row versions more, each
/// written with the ticket type's row locked. A step that comes to a local
/// command other than its hold (a coupon's use, a free order's booking),
/// whose rows refer to the run, is taken once the run is inserted, as a
/// stored run's. A held run whose key had started a run before (so not
/// inserted) fails the whole transaction: its hold cannot stand.
///
/// The types' row locks last until the caller's commit. They are taken in
/// the order of the types' ids, so that two batches never wait on each
/// other's. A remote command issued with [`Dispatch::Inline`] is the
/// caller's to carry out once it has committed, never before: until then
/// the run does not exist for anyone else.
pub async fn take_together(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    news: &[&NewRun],
    dispatch: Dispatch,
) -> anyhow::Result<Vec<Together>> {
    let now = Utc::now();
    let runs: Vec<Run> = news.iter().map(|new| new.unwritten(now)).collect();
    let aheads = hold_together(conn, &runs, now).await?;
    // Each step decided in turn before its run is written, its writes
    // collected.
    let mut steps: Vec<Option<(Advanced, CollectedWrites)>> = news.iter().map(|_| None).collect();
    for ((run, ahead), step) in runs.into_iter().zip(&aheads).zip(&mut steps) {
        let Some(ahead) = ahead else {
            continue;
        };
        let slot = Mutex::new(None);
        let row = RunRow::Unstored(&slot);
        let run_id = run.id;
        match advance_collected(conn, signer, run, now, Some(ahead), dispatch, row).await {
            Ok(advanced) => *step = Some((advanced, left_in(slot, run_id)?)),
            Err(e) if e.is::<NeedsRow>() => {}
            Err(e) => return Err(e),
        }
    }
    let rows: Vec<(&NewRun, Option<&Transition>)> = news
        .iter()
        .zip(&steps)
        .map(|(new, step)| (*new, step.as_ref().map(|(_, w)| &w.transition)))
        .collect();
    let stamps: HashMap<Uuid, Stamped> = workflow_runs::insert_many(conn, &rows)
        .await?
        .into_iter()
        .map(|stamped| (stamped.id, stamped))
        .collect();
    let held = |ahead: &Option<Ahead>| {
        ahead
            .as_ref()
            .is_some_and(|a| matches!(a.outcome, HoldOutcome::Held(_)))
    };
    if let Some((new, _)) = news
        .iter()
        .zip(&aheads)
        .find(|(new, ahead)| held(ahead) && !stamps.contains_key(&new.id))
    {
        anyhow::bail!(
            "the key of run {} had started a run before: its seats cannot stay held",
            new.id
        );
    }
    let inserted: HashMap<Uuid, i32> = steps
        .iter()
        .flatten()
        .filter_map(|(_, w)| Some((w.run_id, stamps.get(&w.run_id)?.version)))
        .collect();
    // The steps that wait for their run's row, taken now that it is there.
    for ((new, ahead), step) in news.iter().zip(&aheads).zip(&mut steps) {
        let (Some(ahead), None, Some(stamped)) = (ahead, &step, stamps.get(&new.id)) else {
            continue;
        };
        let slot = Mutex::new(None);
        let run = new.inserted_as(stamped);
        let row = RunRow::Collected(&slot);
        let advanced =
            advance_collected(conn, signer, run, now, Some(ahead), dispatch, row).await?;
        *step = Some((advanced, left_in(slot, new.id)?));
    }
    // The rest of every step's writes, sent in one round trip: a run not
    // inserted (its key started one before, and it held nothing) sends none.
    let mut advanced: Vec<Option<Advanced>> = Vec::with_capacity(news.len());
    let mut collected: Vec<CollectedWrites> = Vec::new();
    for step in steps {
        match step {
            Some((stepped, writes)) if stamps.contains_key(&writes.run_id) => {
                advanced.push(Some(stepped));
                collected.push(writes);
            }
            _ => advanced.push(None),
        }
    }
    let sent = send_collected(conn, &collected, &inserted).await?;
    let mut written = collected.into_iter().zip(sent);
    let mut together = Vec::with_capacity(news.len());
    for (new, advanced) in news.iter().zip(advanced) {
        let answer = match (stamps.get(&new.id), advanced) {
            (None, _) => Together::NotInserted,
            (Some(stamped), None) => Together::Started(Box::new(new.inserted_as(stamped))),
            (Some(_), Some(advanced)) => {
                let (writes, sent) = written
                    .next()
                    .with_context(|| format!("run {}'s writes were not sent", new.id))?;
                let (queued, issued) =
                    dispatch.of(writes.effect.map(|(effect, _)| effect), sent.backstop_id);
                Together::Stepped(Advanced {
                    queued: queued || writes.timer.is_some(),
                    version: Some(sent.version),
                    issued,
                    ..advanced
                })
            }
        };
        together.push(answer);
    }
    Ok(together)
}

/// Holds the seats of `runs` that hold one ticket type, together, one
/// statement per type, in the order of the types' ids: each run's outcome
/// (`None` for a run whose step holds more than one type, or nothing). The
/// runs' rows may come later in the transaction: the check that they exist
/// waits for its commit.
async fn hold_together(
    conn: &mut AsyncPgConnection,
    runs: &[Run],
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<Vec<Option<Ahead>>> {
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
    if !by_type.is_empty() {
        hold_batch::check_runs_at_commit(conn).await?;
    }
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
    Ok(aheads)
}

/// The writes an advance left in `slot` for run `run_id`.
fn left_in(slot: Mutex<Option<CollectedWrites>>, run_id: Uuid) -> anyhow::Result<CollectedWrites> {
    slot.into_inner()
        .map_err(|_| anyhow::anyhow!("the collected writes' slot was poisoned"))?
        .with_context(|| format!("run {run_id} did not move with its hold"))
}
