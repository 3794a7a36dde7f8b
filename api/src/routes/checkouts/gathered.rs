//! Checkout starts gathered: the starts that arrive while one batch is being
//! written are written together by the next, in one transaction on one
//! connection.
//!
//! In a flash sale most buyers come at once, and most of them after the last
//! seat. Started one by one, each took a pooled connection and a transaction
//! of its own (the participant's lock, what is left of the seats, the run's
//! insert, its history, the commit) to learn that it was sold out, and the
//! last of them waited for the pool behind all the others. Gathered, a batch
//! takes every participant's lock and looks for their open checkouts in one
//! statement, reads what is left of the ticket types once, decides each start
//! that no longer fits through the engine's own first step (without writing
//! it), and inserts those runs in one statement, ended sold out, with their
//! history. The others take their first step (the hold) in the same
//! transaction: their seats are held together, one statement per ticket
//! type, and each run is inserted as its step leaves it, all in one
//! statement (`FirstSteps::take_together`). The commit then
//! answers every buyer of the batch, winners too, and the next batch reads
//! what is left after this one's holds. A start whose step is not taken so
//! (an order of several ticket types) gets its start message, and takes its
//! step on a connection of its own once the batch has committed, as a start
//! alone does.
//!
//! Only what a start alone would decide the same way is decided here. A start
//! the participant's limits refuse (an open checkout of the event, the
//! event's tickets per participant), one whose key started a run before, a
//! second start of the same participant in one batch, and every start of a
//! batch that fails, are answered [`Gathered::Usual`]: the request starts
//! alone and tells what it finds. The batch holds its participants' locks
//! until it commits, so such a start sees the batch's runs.
//!
//! The engine counts a decided start's transition as it decides it; a start
//! then not inserted (its key started a run a moment before) was counted
//! without moving, as a failed commit would be.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use boxoffice_models::prime::Primer;
use boxoffice_models::workflow_runs::{self, NewRun, Run, Stamped, Transition};
use boxoffice_models::workflow_steps::{self, NewStepRecord};
use boxoffice_models::{DbPool, seats_left};
use boxoffice_workflows::checkout::Item;
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::batch_trace::{Behind, Phases};
use super::limits;
use super::new_checkout::NewCheckout;
use crate::first_steps::{AfterCommit, DecidedStart, FirstStep, FirstSteps, Together};
use crate::starts_in_flight::{Entered, StartsInFlight};

/// The most starts written in one batch.
pub const MAX_BATCH: usize = 256;

/// One checkout start, validated, as a batch writes it. It waits for its
/// batch in this form, not as the row to insert: in a flood thousands wait
/// at once, and the run's state and view as JSON trees are several times its
/// size; they are built for the batch being written only.
pub struct Start {
    pub new: NewCheckout,
    /// The event's tickets per participant.
    pub limit: Option<i32>,
}

/// What became of a gathered start.
#[derive(Debug)]
pub enum Gathered {
    /// Inserted decided (sold out): its id, and where it stands.
    Decided(Uuid, FirstStep),
    /// Inserted with its first step taken in the batch (its seats held, or
    /// refused by the hold): its id, and where it stands.
    Stepped(Uuid, FirstStep),
    /// Inserted as started, with its start message (`.1`, the backstop of
    /// the first step that the caller now takes).
    ToStep(Box<Run>, i64),
    /// Nothing written: the request starts alone.
    Usual,
}

struct Waiting {
    start: Start,
    reply: oneshot::Sender<Gathered>,
    since: Instant,
}

/// The process's writer of checkout starts; clones share it. Its thread ends
/// when the last clone is dropped.
#[derive(Clone)]
pub struct GatheredStarts {
    queue: mpsc::UnboundedSender<Waiting>,
    /// Every start from the moment the API takes it in to its answer
    /// ([`Self::taken_in`]), for what waits for a flood of them to pass
    /// (`crate::starts_in_flight`); the batches' debug line shows it.
    in_flight: StartsInFlight,
    /// The starts taken in and not yet queued here: the batch about to be
    /// written waits a moment for them ([`ON_THEIR_WAY`]).
    on_their_way: StartsInFlight,
}

impl GatheredStarts {
    /// Starts the writer on a thread of its own, with a runtime of its own
    /// and its connection opened there. On the API's runtime a batch waited
    /// behind every request task of a flood at each of its round trips (a
    /// batch of 256 holds took 120 to 220 ms while 10,000 requests were
    /// being taken in, 55 to 103 ms after); on its own thread the OS shares
    /// the cores between it and the requests. Without the thread (the OS
    /// refused it) every start is written alone.
    pub fn start(db: DbPool, steps: Arc<dyn FirstSteps>) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        let in_flight = steps.starts_in_flight();
        let on_their_way = StartsInFlight::default();
        let coming = on_their_way.clone();
        let writer = crate::own_thread::spawn("checkout-starts", move || {
            write_batches(db, steps, waiting, coming)
        });
        if let Err(e) = writer {
            tracing::error!(error = %e, "no thread for the writer of checkout starts; each starts alone");
        }
        GatheredStarts {
            queue,
            in_flight,
            on_their_way,
        }
    }

    /// Counts a checkout start from the moment the API takes it in
    /// (`routes::checkouts::taken_in`): in flight until the first guard is
    /// dropped with its answer, on its way here until the second is handed
    /// to [`Self::write`] (or dropped with a refusal).
    pub fn taken_in(&self) -> (Entered, Entered) {
        (self.in_flight.enter(), self.on_their_way.enter())
    }

    /// Writes `start` with the others waiting. `on_its_way` is its count on
    /// its way here, let go of once it is queued.
    pub async fn write(&self, start: Start, on_its_way: Option<Entered>) -> Gathered {
        let (reply, answer) = oneshot::channel();
        let queued = self.queue.send(Waiting {
            start,
            reply,
            since: Instant::now(),
        });
        // After the send: the batch waiting for the starts on their way
        // finds this one queued once it is no longer counted.
        drop(on_its_way);
        if queued.is_err() {
            return Gathered::Usual;
        }
        answer.await.unwrap_or(Gathered::Usual)
    }
}

async fn write_batches(
    db: DbPool,
    steps: Arc<dyn FirstSteps>,
    mut waiting: mpsc::UnboundedReceiver<Waiting>,
    on_their_way: StartsInFlight,
) {
    // Opened here, so that the connection's own task runs on this thread
    // too, and its statements planned ahead of a sale's first batch.
    boxoffice_models::pool::warm(&db, db.status().max_size, Primer::Starts).await;
    // One batch at a time: each start claims its seats from what the
    // batches before it left (see `write_starts`). Batches written at once
    // would each read the same figure and send their losers to the holds.
    let in_flight = steps.starts_in_flight();
    while let Some(mut batch) = crate::batches::next(&mut waiting, MAX_BATCH).await {
        let gathering = Instant::now();
        let first = batch.len();
        crate::batches::add_those_on_their_way(
            &mut batch,
            &mut waiting,
            &on_their_way,
            MAX_BATCH,
            ON_THEIR_WAY,
        )
        .await;
        let behind = Behind {
            gathered: batch.len() - first,
            gathered_ms: gathering.elapsed().as_secs_f64() * 1e3,
            queued: waiting.len(),
            on_their_way: on_their_way.count(),
            in_flight: in_flight.count(),
        };
        write_batch(&db, steps.as_ref(), batch, behind).await;
    }
}

/// The longest a batch waits for the starts on their way to the writer.
///
/// A request is counted on its way from the moment the API takes it in
/// (`routes::checkouts::taken_in`) until it is queued here: its token, its
/// session (a sale's buyers come with sessions the process has not read
/// yet), its body and the sale's terms come between. When a wave of buyers
/// comes at once, the first of them reaches the writer alone or with a few
/// others, and a batch written at once left the rest to wait for its commit
/// and then to be written in the next: at 50 buyers for 10 seats, a first
/// batch of 2 to 36 starts and the next with the rest, 6 to 20 ms later.
/// Waiting for them, the wave is one batch. A start alone has nothing on
/// its way and waits for nothing; the bound keeps a request that is slow to
/// be taken in (a body sent slowly) from holding up the others for longer.
pub const ON_THEIR_WAY: std::time::Duration = std::time::Duration::from_millis(5);

/// Writes one batch and answers each of its starts.
async fn write_batch(db: &DbPool, steps: &dyn FirstSteps, batch: Vec<Waiting>, behind: Behind) {
    let mut participants = HashSet::new();
    let (batch, again): (Vec<Waiting>, Vec<Waiting>) = batch
        .into_iter()
        .partition(|w| participants.insert(w.start.new.user_id));
    // The second start of a participant waits for the first's commit under
    // their lock, and is told of the first's run.
    for w in again {
        metrics::counter!("checkout_starts_gathered_total", "written" => "alone").increment(1);
        let _ = w.reply.send(Gathered::Usual);
    }
    let starts: Vec<&Start> = batch.iter().map(|w| &w.start).collect();
    let news: Result<Vec<NewRun>, _> = starts.iter().map(|s| s.new.new_run()).collect();
    let due = steps.backstop_due();
    let began = Instant::now();
    let mut connected = began;
    let mut written = async {
        let news = news.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut conn = db.get().await?;
        connected = Instant::now();
        conn.transaction::<_, anyhow::Error, _>(async |conn| {
            write_starts(conn, steps, &starts, &news, due).await
        })
        .await
    }
    .await;
    let oldest = batch.iter().map(|w| w.since).min().unwrap_or(began);
    if let Ok(w) = &mut written {
        w.phases.mark("commit_ms");
    }
    // Formatted only when the line is logged.
    let phases = written
        .as_ref()
        .ok()
        .map(|w| tracing::field::display(&w.phases));
    tracing::debug!(
        starts = batch.len(),
        phases,
        gathered = behind.gathered,
        gathered_ms = behind.gathered_ms,
        queued = behind.queued,
        on_their_way = behind.on_their_way,
        in_flight = behind.in_flight,
        waited_ms = (began - oldest).as_secs_f64() * 1e3,
        connection_ms = (connected - began).as_secs_f64() * 1e3,
        written_ms = connected.elapsed().as_secs_f64() * 1e3,
        "a batch of checkout starts"
    );
    let answers = match written {
        Ok(written) => {
            written.after_commit.into_iter().for_each(|then| then());
            written.answers
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), starts = batch.len(), "a batch of checkout starts failed; each starts alone");
            metrics::counter!("checkout_start_batches_failed_total").increment(1);
            Vec::new()
        }
    };
    metrics::counter!("checkout_start_batches_total").increment(1);
    let mut answers = answers.into_iter();
    for w in batch {
        let answer = answers.next().unwrap_or(Gathered::Usual);
        let written = match answer {
            Gathered::Decided(..) => "sold_out",
            Gathered::Stepped(..) => "stepped",
            Gathered::ToStep(..) => "started",
            Gathered::Usual => "alone",
        };
        metrics::counter!("checkout_starts_gathered_total", "written" => written).increment(1);
        let _ = w.reply.send(answer);
    }
}

/// The batch's statements, inside its transaction: answers in the order of
/// `starts`, the order they came in.
///
/// What is left of the ticket types is read once, and each start that may fit
/// claims its seats from that figure before the next is looked at: a start
/// is decided sold out when what is left, less what the batch's earlier
/// starts may hold, does not fit it; first come, first served, as when each
/// starts alone. That figure was read without a lock, so it only sorts:
/// the holds of the starts that may fit, taken next in this transaction,
/// decide, as they do for a start alone.
async fn write_starts(
    conn: &mut AsyncPgConnection,
    steps: &dyn FirstSteps,
    starts: &[&Start],
    news: &[NewRun],
    due: DateTime<Utc>,
) -> anyhow::Result<Written> {
    let mut phases = Phases::begin();
    let within = limits::within_limits(conn, starts).await?;
    phases.mark("limits_ms");
    let mut types: Vec<Uuid> = within
        .iter()
        .flat_map(|&i| starts[i].new.items.iter().map(|item| item.ticket_type_id))
        .collect();
    types.sort_unstable();
    types.dedup();
    let mut left = seats_left::left_for_public(conn, &types).await?;
    phases.mark("left_ms");
    let mut decided: Vec<(usize, DecidedStart)> = Vec::new();
    let mut to_step: Vec<usize> = Vec::new();
    for &i in &within {
        match steps.decide_if_sold_out(conn, &news[i], &left).await? {
            Some(start) => decided.push((i, start)),
            None => {
                claim(&mut left, &starts[i].new.items);
                to_step.push(i);
            }
        }
    }
    phases.mark("decided_ms");
    let rows: Vec<(&NewRun, Option<&Transition>)> = decided
        .iter()
        .map(|(i, d)| (&news[*i], Some(&d.transition)))
        .collect();
    // A run missing here was not inserted (its key started one before).
    let inserted: HashMap<Uuid, Stamped> = workflow_runs::insert_many(conn, &rows)
        .await?
        .into_iter()
        .map(|stamped| (stamped.id, stamped))
        .collect();
    let history: Vec<NewStepRecord> = decided
        .iter()
        .filter(|(i, _)| inserted.contains_key(&news[*i].id))
        .flat_map(|(_, d)| d.history.iter().cloned())
        .collect();
    let mut answers: Vec<Gathered> = starts.iter().map(|_| Gathered::Usual).collect();
    for (i, d) in decided {
        let id = news[i].id;
        if let Some(stamped) = inserted.get(&id) {
            let version = stamped.version;
            answers[i] = Gathered::Decided(id, FirstStep { version, ..d.step });
        }
    }

    // The decided starts' history goes before the holds: the holds lock the
    // ticket types' rows until the commit, so they come last.
    workflow_steps::record_all(conn, &history).await?;
    phases.mark("inserted_ms");

    // The starts that may fit take their first step here: their seats are
    // held together, and each is inserted as its step leaves it; the commit
    // writes them held.
    let may_fit: Vec<&NewRun> = to_step.iter().map(|&i| &news[i]).collect();
    let taken = steps.take_together(conn, &may_fit).await?;
    phases.mark("stepped_ms");
    let mut after_commit = Vec::new();
    let mut left: Vec<(usize, Box<Run>)> = Vec::new();
    for (&i, taken) in to_step.iter().zip(taken) {
        match taken {
            Together::Stepped(taken) => {
                answers[i] = Gathered::Stepped(news[i].id, taken.step);
                after_commit.extend(taken.after_commit);
            }
            Together::Started(run) => left.push((i, run)),
            Together::NotInserted => {}
        }
    }
    let to_start: Vec<Uuid> = left.iter().map(|(_, run)| run.id).collect();
    let messages: HashMap<Uuid, i64> = workflow_runs::push_starts(conn, &to_start, Some(due))
        .await?
        .into_iter()
        .collect();
    for (i, run) in left {
        if let Some(&message) = messages.get(&run.id) {
            answers[i] = Gathered::ToStep(run, message);
        }
    }
    phases.mark("pushed_ms");
    Ok(Written {
        answers,
        after_commit,
        phases,
    })
}

/// What a batch's transaction wrote.
struct Written {
    /// One answer per start, in the order they came in.
    answers: Vec<Gathered>,
    /// To do once it has committed.
    after_commit: Vec<AfterCommit>,
    /// How long each part of it took.
    phases: Phases,
}

/// Takes `items` off what is `left` of each ticket type.
fn claim(left: &mut [(Uuid, i32)], items: &[Item]) {
    for item in items {
        if let Some((_, n)) = left.iter_mut().find(|(id, _)| *id == item.ticket_type_id) {
            *n -= item.quantity;
        }
    }
}
