//! What one advance writes for its own run, sent together: its history, its
//! transition and its outbox messages (the remote command, the timer). A run
//! decided before it was written is inserted first, with its transition.

use std::collections::{BTreeMap, HashMap};

use boxoffice_models::outbox;
use boxoffice_models::workflow_runs::{self, Inserted, NewRun, Run, Transition};
use boxoffice_models::workflow_steps::{self, NewStepRecord};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::messages::{ADVANCE_QUEUE, AdvanceRun, EFFECT_QUEUE, RunEffect};

/// What an advance writes for its own run: the history, the transition,
/// the remote command's message and the timer.
pub(super) struct StepWrites<'a> {
    pub(super) run_id: Uuid,
    pub(super) row: RunRow<'a>,
    pub(super) history: &'a [NewStepRecord],
    pub(super) transition: &'a Transition,
    /// The command and when its message is due (`None`: at once).
    pub(super) effect: Option<(&'a RunEffect, Option<DateTime<Utc>>)>,
    /// When the waiting run is to be looked at again.
    pub(super) timer: Option<DateTime<Utc>>,
}

impl StepWrites<'_> {
    /// Sends the writes together, one round trip instead of one per statement
    /// (diesel-async pipelines the statements of a connection awaited at
    /// once); inside the step's transaction they stand or fall together, in
    /// any order, as none reads what another writes. Returns the run's new
    /// version and the command's message id.
    ///
    /// A run not written yet is inserted first, moved (its history refers to
    /// it); if its idempotency key started a run before, nothing is written
    /// and the error is [`StartedBefore`].
    pub(super) async fn send(&self, conn: &mut AsyncPgConnection) -> anyhow::Result<Sent> {
        let inserted = match self.row {
            RunRow::Stored => None,
            RunRow::Deferred(_) | RunRow::Collected(_) | RunRow::Unstored(_) => {
                anyhow::bail!("the writes of run {} are the caller's to send", self.run_id)
            }
            RunRow::Unwritten(new) => {
                match workflow_runs::insert_decided(conn, new, self.transition).await? {
                    Inserted::Created(run) => Some(run.version),
                    Inserted::Existing(run) => return Err(StartedBefore(run).into()),
                }
            }
        };
        self.send_shared(conn, inserted).await
    }

    /// The writes after the insert, if any (`inserted`: the version it
    /// wrote), on a connection other writes may share: all in one round
    /// trip with theirs.
    async fn send_shared(
        &self,
        conn: &AsyncPgConnection,
        inserted: Option<i32>,
    ) -> anyhow::Result<Sent> {
        let transition = async {
            match inserted {
                Some(version) => Ok(version),
                None => workflow_runs::apply(conn, self.run_id, self.transition).await,
            }
        };
        let effect = async {
            match self.effect {
                Some((effect, due)) => outbox::push(conn, EFFECT_QUEUE, effect, due)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        // The timer: a delayed "look at run R" (the sweep is the backstop).
        let timer = async {
            match self.timer {
                Some(deadline) => {
                    let message = AdvanceRun::past_start(self.run_id);
                    outbox::push(conn, ADVANCE_QUEUE, &message, Some(deadline))
                        .await
                        .map(drop)
                }
                None => Ok(()),
            }
        };
        let ((), version, backstop_id, ()) = futures::try_join!(
            workflow_steps::record_all(conn, self.history),
            transition,
            effect,
            timer,
        )?;
        Ok(Sent {
            version,
            backstop_id,
        })
    }
}

/// What [`StepWrites::send`] wrote.
pub(super) struct Sent {
    /// The run's version after the transition.
    pub(super) version: i32,
    /// The remote command's message, if it has one.
    pub(super) backstop_id: Option<i64>,
}

/// Where the row of the run being advanced is.
#[derive(Clone, Copy)]
pub(super) enum RunRow<'a> {
    /// In the table, held by the caller's transaction (locked by it, or
    /// inserted by it).
    Stored,
    /// Not written yet: the advance inserts it as its transition leaves it.
    Unwritten(&'a NewRun),
    /// Not written yet, and not by the advance: its first transition and
    /// history are left in the slot, for the caller to insert with other
    /// runs' (a batch of starts decided together).
    Deferred(&'a std::sync::Mutex<Option<DeferredWrites>>),
    /// In the table, inserted by the caller's transaction, and its writes left
    /// in the slot, for the caller to send with other runs' in one round trip
    /// ([`send_collected`]). No other transaction sees the run before that
    /// one commits, so no signal waits for it: the advance reads none.
    Collected(&'a std::sync::Mutex<Option<CollectedWrites>>),
    /// Not written yet: the caller inserts it as its transition leaves it,
    /// with other runs', and sends the rest of its writes with theirs
    /// ([`send_collected`]). The step may take no local command but a hold
    /// its caller took ahead: any other would write rows that refer to the
    /// run ([`NeedsRow`]).
    Unstored(&'a std::sync::Mutex<Option<CollectedWrites>>),
}

/// What the advance of a stored run writes, left for its caller to send with
/// other runs' ([`RunRow::Collected`]).
#[derive(Debug)]
pub struct CollectedWrites {
    pub(super) run_id: Uuid,
    pub(super) history: Vec<NewStepRecord>,
    pub(super) transition: Transition,
    /// The remote command and when its message is due.
    pub(super) effect: Option<(RunEffect, Option<DateTime<Utc>>)>,
    pub(super) timer: Option<DateTime<Utc>>,
}

/// Sends the collected writes of several runs together, in the caller's
/// transaction: one statement per table for them all (every run's history
/// in one insert, every transition in one update, the messages in one insert
/// per queue and due time), sent in one round trip. A statement per run made
/// a batch of 256 first steps 768 statements, most of its transaction's time
/// with the ticket type's row locked. One [`Sent`] per run, in order.
///
/// A run in `inserted` (its id, and the version its insert wrote) was
/// inserted as its transition leaves it: it is not moved again.
pub(super) async fn send_collected(
    conn: &mut AsyncPgConnection,
    collected: &[CollectedWrites],
    inserted: &HashMap<Uuid, i32>,
) -> anyhow::Result<Vec<Sent>> {
    let conn: &AsyncPgConnection = conn;
    let history: Vec<NewStepRecord> = collected
        .iter()
        .flat_map(|c| c.history.iter().cloned())
        .collect();
    let moves: Vec<(Uuid, &Transition)> = collected
        .iter()
        .filter(|c| !inserted.contains_key(&c.run_id))
        .map(|c| (c.run_id, &c.transition))
        .collect();
    let mut effects: BTreeMap<Option<DateTime<Utc>>, Vec<RunEffect>> = BTreeMap::new();
    let mut timers: BTreeMap<DateTime<Utc>, Vec<AdvanceRun>> = BTreeMap::new();
    for c in collected {
        if let Some((effect, due)) = &c.effect {
            effects.entry(*due).or_default().push(effect.clone());
        }
        if let Some(deadline) = c.timer {
            let message = AdvanceRun::past_start(c.run_id);
            timers.entry(deadline).or_default().push(message);
        }
    }
    let effects_sent = futures::future::try_join_all(
        effects
            .iter()
            .map(|(due, effects)| outbox::push_all(conn, EFFECT_QUEUE, effects, *due)),
    );
    let timers_set = futures::future::try_join_all(timers.iter().map(|(deadline, messages)| {
        outbox::push_all(conn, ADVANCE_QUEUE, messages, Some(*deadline))
    }));
    let ((), moved, effects_sent, _) = futures::try_join!(
        workflow_steps::record_all(conn, &history),
        workflow_runs::apply_many(conn, &moves),
        effects_sent,
        timers_set,
    )?;
    let mut versions: HashMap<Uuid, i32> = moved.into_iter().collect();
    versions.extend(inserted);
    // A run has one command at a time: its message is found by its run.
    let backstops: HashMap<Uuid, i64> = effects_sent
        .into_iter()
        .flatten()
        .map(|(id, effect)| (effect.run_id, id))
        .collect();
    collected
        .iter()
        .map(|c| {
            let version = *versions
                .get(&c.run_id)
                .ok_or_else(|| anyhow::anyhow!("run {} was not there to move", c.run_id))?;
            Ok(Sent {
                version,
                backstop_id: backstops.get(&c.run_id).copied(),
            })
        })
        .collect()
}

/// What the insert of a run decided before it was written must carry: its
/// first transition and the history of that step.
#[derive(Debug)]
pub struct DeferredWrites {
    pub transition: Transition,
    pub history: Vec<NewStepRecord>,
}

/// A run advanced before it was written ([`RunRow::Unstored`]) came to a
/// local command that writes rows referring to it: it must be inserted
/// first, and its step taken as a stored run's. Nothing was written.
#[derive(Debug)]
pub struct NeedsRow(pub Uuid);

impl std::fmt::Display for NeedsRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "run {}'s step writes rows that refer to it", self.0)
    }
}

impl std::error::Error for NeedsRow {}

/// The key of a run advanced before it was written had started a run before:
/// that run, untouched.
#[derive(Debug)]
pub(super) struct StartedBefore(pub(super) Run);

impl std::fmt::Display for StartedBefore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "this idempotency key started run {} before", self.0.id)
    }
}

impl std::error::Error for StartedBefore {}
