//! The API's [`FirstSteps`] over the workers' engine: a `serve` process takes
//! the first step (the hold) of the checkouts it starts, through its own
//! [`HoldBatcher`], and, when it has the payment provider, creates a paid
//! checkout's payment intent right after the answer.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use boxoffice_api::first_steps::{
    AfterCommit, DecidedStart, Deciding, Finishing, FirstStep, FirstSteps, Refused, SoldOut, Taken,
    TakenTogether, TakingTogether, Together,
};
use boxoffice_api::starts_in_flight::StartsInFlight;
use boxoffice_models::DbPool;
use boxoffice_models::prime::Primer;
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::workflow_runs::{NewRun, Run};
use boxoffice_workers::engine::executor::Unwritten;
use boxoffice_workers::engine::first_step::{self, FIRST_STEP_GRACE};
use boxoffice_workers::engine::{Advanced, Dispatch, HoldBatcher, Issued, RemoteCalls};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Calls to the payment provider one API process makes at once after first
/// steps, as many as a worker process's effect jobs: a flood of checkouts
/// queues here, in order, instead of opening a connection to the provider
/// per buyer (and a provider outage costs as few calls as a worker's).
pub const CALLS_AT_ONCE: usize = 16;

pub struct EngineFirstSteps {
    signer: Arc<TicketSigner>,
    /// The checkout starts this process has not answered yet: the provider
    /// calls wait while they are a flood.
    in_flight: StartsInFlight,
    batcher: HoldBatcher,
    /// The provider's calls, when this process makes them; otherwise a first
    /// step's remote command goes to the workers through the outbox.
    calls: Option<Calls>,
}

/// How long a stopping `serve` waits for the payment intents its first steps
/// issued, once its requests are answered, before it exits: a rolling restart
/// in a sale then leaves none of its buyers waiting for a backstop
/// (`FIRST_STEP_GRACE` after the step). More than the provider client's own
/// request timeout (10 s), so calls in flight end by themselves (a timeout is
/// retried by the workers); a queue too long for it, or a slow provider,
/// leaves the rest to the backstops. Within the time process managers give a
/// process to stop (Kubernetes 30 s, systemd 90 s).
pub const FINISH_LIMIT: Duration = Duration::from_secs(15);

/// The longest a payment intent waits, after the step that issued it, for a
/// flood of checkout starts to be answered (`boxoffice_api::starts_in_flight`):
/// decisions go first, but a flood that lasts (a sale of 10,000 buyers is
/// answered in about five seconds) does not hold the winners' payment forms
/// back for its whole length. A fraction of a hold's lifetime.
pub const DECISIONS_FIRST_LIMIT: Duration = Duration::from_secs(2);

/// The remote commands of first steps, carried out on a thread of this
/// process's own, with a runtime of its own. On the API's runtime they waited
/// behind every request task of a flood at each of their awaits (step → step
/// 0.7 s at 2,000 buyers, against 66 ms through a worker process); on their
/// own thread the OS shares the cores between them and the requests, as it
/// did between the API and the workers.
struct Calls {
    /// Each command with the moment its step issued it.
    to_carry_out: mpsc::UnboundedSender<(Instant, Issued)>,
    /// Cancelled when the process stops taking requests: the thread carries
    /// out what it was sent, then ends.
    stop: CancellationToken,
    /// Cancelled by the thread once every command it was sent is done.
    finished: CancellationToken,
}

impl Calls {
    fn start(calls: RemoteCalls, in_flight: StartsInFlight) -> std::io::Result<Self> {
        let (to_carry_out, issued) = mpsc::unbounded_channel();
        let (stop, finished) = (CancellationToken::new(), CancellationToken::new());
        let (stopping, done) = (stop.clone(), finished.clone());
        boxoffice_api::own_thread::spawn("first-step-calls", move || async move {
            carry_out(calls, in_flight, issued, stopping).await;
            done.cancel();
        })?;
        Ok(Calls {
            to_carry_out,
            stop,
            finished,
        })
    }

    /// Sends `issued` to the calls' thread when called: after the commit of
    /// the step that issued it. A command that cannot be sent (the thread is
    /// gone) waits for its backstop.
    fn handing(&self, run_id: Uuid, issued: Issued) -> AfterCommit {
        let to_carry_out = self.to_carry_out.clone();
        Box::new(move || {
            if to_carry_out.send((Instant::now(), issued)).is_err() {
                tracing::warn!(%run_id, "the API's provider calls stopped; the payment intent waits for its backstop");
            }
        })
    }

    async fn finish(&self) {
        self.stop.cancel();
        let finished = tokio::time::timeout(FINISH_LIMIT, self.finished.cancelled()).await;
        match finished {
            Ok(()) => tracing::info!("the first steps' provider calls are done"),
            Err(_) => tracing::warn!(
                limit = ?FINISH_LIMIT,
                "the first steps' provider calls did not finish in time; the rest wait for their backstops"
            ),
        }
    }
}

/// The calls' thread: at most [`CALLS_AT_ONCE`] commands at once, in the
/// order they were issued, each once a flood of checkout starts has been
/// answered (or [`DECISIONS_FIRST_LIMIT`] after its step), until `stop`;
/// then what was sent before it, and the calls in flight, are finished.
async fn carry_out(
    calls: RemoteCalls,
    starts: StartsInFlight,
    mut issued: mpsc::UnboundedReceiver<(Instant, Issued)>,
    stop: CancellationToken,
) {
    // Opened here, where they are used, and ahead of the first sale's payment
    // intents (as the requests' pool is).
    let size = calls.db.status().max_size;
    boxoffice_models::pool::warm(&calls.db, size, Primer::Requests).await;
    let slots = Arc::new(Semaphore::new(CALLS_AT_ONCE));
    let in_flight = TaskTracker::new();
    let carry = async |(issued_at, command): (Instant, Issued)| {
        if !starts
            .flood_passed_by(issued_at + DECISIONS_FIRST_LIMIT)
            .await
        {
            tracing::debug!(run_id = %command.effect.run_id, "a payment intent waited its longest for a flood of checkout starts");
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // never closed
        };
        let calls = calls.clone();
        in_flight.spawn(async move {
            calls.follow_or_hand_over(command).await;
            drop(slot);
        });
    };
    loop {
        tokio::select! {
            command = issued.recv() => match command {
                Some(command) => carry(command).await,
                None => break, // the first steps are gone
            },
            () = stop.cancelled() => break,
        }
    }
    // No request is left to issue more.
    issued.close();
    while let Some(command) = issued.recv().await {
        carry(command).await;
    }
    in_flight.close();
    in_flight.wait().await;
}

impl EngineFirstSteps {
    /// How a first step's remote command leaves: carried out by this
    /// process when it has the provider, else through the outbox.
    fn dispatch(&self) -> Dispatch {
        match self.calls {
            Some(_) => Dispatch::Inline,
            None => Dispatch::Queue,
        }
    }

    /// `holds_db` is the batcher's own pool: a request keeps its connection
    /// while its hold is taken, so the batch statement must not wait for one
    /// of the requests' connections.
    pub fn new(holds_db: DbPool, signer: Arc<TicketSigner>) -> Self {
        EngineFirstSteps {
            batcher: HoldBatcher::new(holds_db),
            signer,
            in_flight: StartsInFlight::default(),
            calls: None,
        }
    }

    /// Carries out the remote command a first step issues (a paid checkout's
    /// payment intent) in this process, after the answer, instead of sending
    /// it through the outbox, Redis and a worker: the buyer's payment form is
    /// ready a trip sooner. Its backstop message stays in the outbox until the
    /// command is done, for a process that dies before.
    pub fn calling(mut self, calls: RemoteCalls) -> std::io::Result<Self> {
        self.calls = Some(Calls::start(calls, self.in_flight.clone())?);
        Ok(self)
    }
}

impl FirstSteps for EngineFirstSteps {
    fn backstop_due(&self) -> DateTime<Utc> {
        Utc::now() + FIRST_STEP_GRACE
    }

    fn take<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        run: &'a Run,
        backstop_id: Option<i64>,
    ) -> Taken<'a> {
        Box::pin(async move {
            let mut advanced = first_step::take(
                conn,
                &self.signer,
                &self.batcher,
                run,
                backstop_id,
                self.dispatch(),
            )
            .await?;
            // Not awaited: the answer carries the decision, the payment form
            // follows through the run's status. A command that cannot be
            // sent (the calls' thread is gone) waits for its backstop.
            if let (Some(issued), Some(calls)) = (advanced.issued.take(), &self.calls) {
                calls.handing(run.id, issued)();
            }
            Ok(first_step_of(advanced))
        })
    }

    fn insert_if_sold_out<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        new: &'a NewRun,
    ) -> Refused<'a> {
        Box::pin(async move {
            let refused = first_step::refuse_if_sold_out(conn, &self.signer, new).await?;
            Ok(match refused {
                None => None,
                Some(Unwritten::StartedBefore(run)) => Some(SoldOut::StartedBefore(run)),
                Some(Unwritten::Inserted(advanced)) => {
                    let step = first_step_of(advanced)
                        .context("a run decided before it was written did not move")?;
                    Some(SoldOut::Decided(new.id, step))
                }
            })
        })
    }

    fn decide_if_sold_out<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        new: &'a NewRun,
        left: &'a [(Uuid, i32)],
    ) -> Deciding<'a> {
        Box::pin(async move {
            let Some(decided) =
                first_step::decide_if_sold_out(conn, &self.signer, new, left).await?
            else {
                return Ok(None);
            };
            let step = first_step_of(decided.advanced)
                .context("a run decided before it was written did not move")?;
            Ok(Some(DecidedStart {
                step,
                transition: decided.writes.transition,
                history: decided.writes.history,
            }))
        })
    }

    fn take_together<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        news: &'a [&'a NewRun],
    ) -> TakingTogether<'a> {
        Box::pin(async move {
            let taken =
                first_step::take_together(conn, &self.signer, news, self.dispatch()).await?;
            taken
                .into_iter()
                .zip(news)
                .map(|(taken, new)| {
                    Ok(match taken {
                        first_step::Together::Stepped(mut advanced) => {
                            let issued = advanced.issued.take();
                            let step = first_step_of(advanced)
                                .context("a run taken with its batch did not move")?;
                            let after_commit = match (issued, &self.calls) {
                                (Some(issued), Some(calls)) => Some(calls.handing(new.id, issued)),
                                _ => None,
                            };
                            Together::Stepped(TakenTogether { step, after_commit })
                        }
                        first_step::Together::Started(run) => Together::Started(run),
                        first_step::Together::NotInserted => Together::NotInserted,
                    })
                })
                .collect()
        })
    }

    fn starts_in_flight(&self) -> StartsInFlight {
        self.in_flight.clone()
    }

    fn finish(&self) -> Finishing<'_> {
        Box::pin(async move {
            if let Some(calls) = &self.calls {
                calls.finish().await;
            }
        })
    }
}

/// Where an advance left the run, when it moved it.
fn first_step_of(advanced: Advanced) -> Option<FirstStep> {
    match (
        advanced.status,
        advanced.step,
        advanced.view,
        advanced.version,
    ) {
        (Some(status), Some(step), Some(view), Some(version)) => Some(FirstStep {
            status,
            step,
            view,
            version,
        }),
        _ => None,
    }
}
