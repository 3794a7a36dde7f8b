//! The API's [`SignalDelivery`] over the workers' engine: a `serve` process
//! advances the run of a webhook's signal itself, right after the webhook's
//! commit, with the engine's own advance (the same transaction, history and
//! outbox messages as a worker's job), and deletes the signal's backstop
//! message in that transaction.

use std::sync::Arc;

use boxoffice_api::first_steps::Finishing;
use boxoffice_api::webhooks::delivery::SignalDelivery;
use boxoffice_models::DbPool;
use boxoffice_models::outbox;
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::workflow_signals::{ADVANCE_QUEUE, AdvanceRun};
use boxoffice_workers::engine::{Dispatch, Trigger, advance_holding};
use chrono::{DateTime, Utc};
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::first_steps::FINISH_LIMIT;

/// How long a signal delivered by the process that stored it waits before a
/// worker delivers it instead: longer than a step takes under a flood, so
/// that the backstop is deleted unused in the normal case.
pub const DELIVERY_GRACE: chrono::Duration = chrono::Duration::seconds(20);

pub struct EngineSignalDelivery {
    /// The deliveries' own connections: a flood of requests does not hold
    /// the confirmations back, nor they the requests.
    db: DbPool,
    signer: Arc<TicketSigner>,
    under_way: TaskTracker,
}

impl EngineSignalDelivery {
    pub fn new(db: DbPool, signer: Arc<TicketSigner>) -> Self {
        EngineSignalDelivery {
            db,
            signer,
            under_way: TaskTracker::new(),
        }
    }
}

impl SignalDelivery for EngineSignalDelivery {
    fn backstop_due(&self) -> DateTime<Utc> {
        Utc::now() + DELIVERY_GRACE
    }

    fn deliver(&self, run_id: Uuid, backstop_id: i64) {
        let (db, signer) = (self.db.clone(), self.signer.clone());
        self.under_way.spawn(async move {
            // No hold batcher: a signal's step holds seats only for a late
            // payment, which takes them on its own.
            let delivered = advance_holding(
                &db,
                &signer,
                None,
                run_id,
                Trigger::Poke,
                Dispatch::Queue,
                Some(backstop_id),
            )
            .await;
            if let Err(e) = delivered {
                tracing::warn!(%run_id, error = %e, "delivering a webhook's signal failed; the workers deliver it");
                hand_to_workers(&db, run_id).await;
            }
        });
    }

    fn finish(&self) -> Finishing<'_> {
        Box::pin(async move {
            self.under_way.close();
            if tokio::time::timeout(FINISH_LIMIT, self.under_way.wait())
                .await
                .is_err()
            {
                tracing::warn!(limit = ?FINISH_LIMIT, "webhook signals still being delivered; the rest wait for their backstops");
            }
        })
    }
}

/// A delivery message due at once, so that a failed delivery is retried by
/// the workers (whose jobs park the run if it keeps failing) without waiting
/// for the backstop; if even that cannot be written, the backstop comes due.
async fn hand_to_workers(db: &DbPool, run_id: Uuid) {
    let message = AdvanceRun { run_id };
    let queued = match db.get().await {
        Ok(conn) => outbox::push(&conn, ADVANCE_QUEUE, &message, None)
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = queued {
        tracing::warn!(%run_id, error = %e, "the run waits for its signal's backstop");
    }
}
