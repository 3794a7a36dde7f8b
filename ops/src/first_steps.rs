//! The API's [`FirstSteps`] over the workers' engine: a `serve` process takes
//! the first step (the hold) of the checkouts it starts, through its own
//! [`HoldBatcher`], and, when it has the payment provider, creates a paid
//! checkout's payment intent right after the answer.

use std::sync::Arc;

use boxoffice_api::first_steps::{FirstStep, FirstSteps, Taken};
use boxoffice_models::DbPool;
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::workflow_runs::Run;
use boxoffice_workers::engine::first_step::{self, FIRST_STEP_GRACE};
use boxoffice_workers::engine::{Dispatch, HoldBatcher, Issued, RemoteCalls};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use tokio::sync::{Semaphore, mpsc};

/// Calls to the payment provider one API process makes at once after first
/// steps, as many as a worker process's effect jobs: a flood of checkouts
/// queues here, in order, instead of opening a connection to the provider
/// per buyer (and a provider outage costs as few calls as a worker's).
pub const CALLS_AT_ONCE: usize = 16;

pub struct EngineFirstSteps {
    signer: Arc<TicketSigner>,
    batcher: HoldBatcher,
    /// The provider's calls, when this process makes them; otherwise a first
    /// step's remote command goes to the workers through the outbox.
    calls: Option<Calls>,
}

/// The remote commands of first steps, carried out on a thread of this
/// process's own, with a runtime of its own. On the API's runtime they waited
/// behind every request task of a flood at each of their awaits (step → step
/// 0.7 s at 2,000 buyers, against 66 ms through a worker process); on their
/// own thread the OS shares the cores between them and the requests, as it
/// did between the API and the workers.
struct Calls {
    to_carry_out: mpsc::UnboundedSender<Issued>,
}

impl Calls {
    fn start(calls: RemoteCalls) -> std::io::Result<Self> {
        let (to_carry_out, mut issued) = mpsc::unbounded_channel::<Issued>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("first-step-calls".into())
            .spawn(move || {
                runtime.block_on(async move {
                    // Opened here, where they are used, and ahead of the first
                    // sale's payment intents (as the requests' pool is).
                    let size = calls.db.status().max_size;
                    boxoffice_models::pool::warm(&calls.db, size).await;
                    let slots = Arc::new(Semaphore::new(CALLS_AT_ONCE));
                    // Ends when the API drops its first steps; commands not
                    // carried out by then have their backstops.
                    while let Some(command) = issued.recv().await {
                        let Ok(slot) = slots.clone().acquire_owned().await else {
                            return; // never closed
                        };
                        let calls = calls.clone();
                        tokio::spawn(async move {
                            calls.follow_or_hand_over(command).await;
                            drop(slot);
                        });
                    }
                })
            })?;
        Ok(Calls { to_carry_out })
    }
}

impl EngineFirstSteps {
    /// `holds_db` is the batcher's own pool: a request keeps its connection
    /// while its hold is taken, so the batch statement must not wait for one
    /// of the requests' connections.
    pub fn new(holds_db: DbPool, signer: Arc<TicketSigner>) -> Self {
        EngineFirstSteps {
            batcher: HoldBatcher::new(holds_db),
            signer,
            calls: None,
        }
    }

    /// Carries out the remote command a first step issues (a paid checkout's
    /// payment intent) in this process, after the answer, instead of sending
    /// it through the outbox, Redis and a worker: the buyer's payment form is
    /// ready a trip sooner. Its backstop message stays in the outbox until the
    /// command is done, for a process that dies before.
    pub fn calling(mut self, calls: RemoteCalls) -> std::io::Result<Self> {
        self.calls = Some(Calls::start(calls)?);
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
            let dispatch = match self.calls {
                Some(_) => Dispatch::Inline,
                None => Dispatch::Queue,
            };
            let mut advanced = first_step::take(
                conn,
                &self.signer,
                &self.batcher,
                run,
                backstop_id,
                dispatch,
            )
            .await?;
            // Not awaited: the answer carries the decision, the payment form
            // follows through the run's status. A command that cannot be
            // sent (the calls' thread is gone) waits for its backstop.
            if let (Some(issued), Some(calls)) = (advanced.issued.take(), &self.calls)
                && calls.to_carry_out.send(issued).is_err()
            {
                tracing::warn!(run_id = %run.id, "the API's provider calls stopped; the payment intent waits for its backstop");
            }
            Ok(match (advanced.status, advanced.step, advanced.view) {
                (Some(status), Some(step), Some(view)) => Some(FirstStep { status, step, view }),
                _ => None,
            })
        })
    }
}
