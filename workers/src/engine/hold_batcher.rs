//! The group commit of holds: the runs of this process about to hold one
//! ticket type are held together, in one statement per batch
//! (`boxoffice_models::hold_batch`).
//!
//! Each ticket type being held has a lane: a task that takes the requests
//! waiting for it, in their order of arrival, and holds them in one statement.
//! While that statement runs, the next requests gather; under a flood a batch
//! is as large as the requests that came in during one statement, and alone a
//! request waits for nothing. A lane ends after [`IDLE`] without requests.
//!
//! A hold stays idempotent per run. A run that already has a hold row on the
//! type, a run that is twice in one batch, and every run of a batch whose
//! statement failed (a run held at once by another process hits the holds'
//! unique key and fails its whole batch) are held again one by one through
//! `holds::hold`, which adopts what the run holds. A caller that gives up
//! waiting leaves its request to the lane; the hold, if taken, belongs to the
//! run from its commit, as every hold taken ahead does (see `ahead`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boxoffice_models::DbPool;
use boxoffice_models::hold_batch::{self, Request};
use boxoffice_models::holds::{self, HoldOutcome, Line};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// How long a lane waits for a request before it ends.
const IDLE: Duration = Duration::from_secs(30);
/// The most runs held in one statement.
const MAX_BATCH: usize = 512;
/// Lane ends and restarts a request may meet before it gives up.
const ATTEMPTS: usize = 3;

type Reply = oneshot::Sender<anyhow::Result<HoldOutcome>>;

struct Waiting {
    request: Request,
    reply: Reply,
}

type Lanes = Arc<Mutex<HashMap<Uuid, mpsc::UnboundedSender<Waiting>>>>;

/// This process's lanes, one per ticket type being held.
#[derive(Clone)]
pub struct HoldBatcher {
    db: DbPool,
    lanes: Lanes,
}

impl std::fmt::Debug for HoldBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HoldBatcher").finish_non_exhaustive()
    }
}

impl HoldBatcher {
    pub fn new(db: DbPool) -> Self {
        HoldBatcher {
            db,
            lanes: Arc::default(),
        }
    }

    /// Holds one line for `run_id` until `expires_at` (see `holds::hold`).
    pub async fn hold(
        &self,
        run_id: Uuid,
        line: Line,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<HoldOutcome> {
        let request = Request {
            run_id,
            quantity: line.quantity,
            expires_at,
        };
        for _ in 0..ATTEMPTS {
            let (reply, answer) = oneshot::channel();
            let lane = self.lane(line.ticket_type_id);
            if lane.send(Waiting { request, reply }).is_err() {
                // The lane ended just now; the next attempt starts another.
                continue;
            }
            match answer.await {
                Ok(outcome) => return outcome,
                // The lane ended with the request still queued: it was not
                // held, and holding is idempotent per run anyway.
                Err(_) => continue,
            }
        }
        anyhow::bail!(
            "the hold lane of ticket type {} kept ending",
            line.ticket_type_id
        )
    }

    fn lane(&self, ticket_type_id: Uuid) -> mpsc::UnboundedSender<Waiting> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lane) = lanes.get(&ticket_type_id)
            && !lane.is_closed()
        {
            return lane.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        lanes.insert(ticket_type_id, tx.clone());
        tokio::spawn(run_lane(
            self.db.clone(),
            self.lanes.clone(),
            ticket_type_id,
            rx,
        ));
        tx
    }
}

async fn run_lane(
    db: DbPool,
    lanes: Lanes,
    ticket_type_id: Uuid,
    mut queue: mpsc::UnboundedReceiver<Waiting>,
) {
    loop {
        let first = match tokio::time::timeout(IDLE, queue.recv()).await {
            Ok(Some(first)) => first,
            Ok(None) => return,
            Err(_) => {
                // Idle: leave the map, unless a request came in meanwhile.
                let mut map = lanes.lock().unwrap_or_else(|p| p.into_inner());
                if queue.is_empty() {
                    map.remove(&ticket_type_id);
                    return;
                }
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        hold_batch(&db, ticket_type_id, batch).await;
    }
}

/// Holds a batch and answers every request of it.
async fn hold_batch(db: &DbPool, ticket_type_id: Uuid, batch: Vec<Waiting>) {
    metrics::histogram!("hold_batch_size").record(batch.len() as f64);
    // A run twice in the batch: its later requests go one by one.
    let mut seen = HashSet::with_capacity(batch.len());
    let (together, one_by_one): (Vec<Waiting>, Vec<Waiting>) = batch
        .into_iter()
        .partition(|w| seen.insert(w.request.run_id));
    let requests: Vec<Request> = together.iter().map(|w| w.request).collect();
    let answers = match db.get().await {
        Ok(mut conn) => hold_batch::hold_many(&mut conn, ticket_type_id, &requests)
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(anyhow::Error::from(e)),
    };
    let mut alone = one_by_one;
    match answers {
        Ok(answers) => {
            for (waiting, answer) in together.into_iter().zip(answers) {
                match answer.outcome(ticket_type_id, waiting.request.quantity) {
                    Some(outcome) => {
                        let _ = waiting.reply.send(Ok(outcome));
                    }
                    None => alone.push(waiting),
                }
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "a batch of holds failed; holding its runs one by one");
            alone.extend(together);
        }
    }
    for waiting in alone {
        let line = waiting.request.line(ticket_type_id);
        let outcome = one(db, &waiting.request, line).await;
        let _ = waiting.reply.send(outcome);
    }
}

async fn one(db: &DbPool, request: &Request, line: Line) -> anyhow::Result<HoldOutcome> {
    let mut conn = db.get().await?;
    Ok(holds::hold(&mut conn, request.run_id, &[line], request.expires_at).await?)
}
