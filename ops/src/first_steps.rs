//! The API's [`FirstSteps`] over the workers' engine: a `serve` process takes
//! the first step (the hold) of the checkouts it starts, through its own
//! [`HoldBatcher`].

use std::sync::Arc;

use boxoffice_api::first_steps::{FirstStep, FirstSteps, Taken};
use boxoffice_models::DbPool;
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_workers::engine::HoldBatcher;
use boxoffice_workers::engine::first_step::{self, FIRST_STEP_GRACE};
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub struct EngineFirstSteps {
    db: DbPool,
    signer: Arc<TicketSigner>,
    batcher: HoldBatcher,
}

impl EngineFirstSteps {
    pub fn new(db: DbPool, signer: TicketSigner) -> Self {
        EngineFirstSteps {
            batcher: HoldBatcher::new(db.clone()),
            db,
            signer: Arc::new(signer),
        }
    }
}

impl FirstSteps for EngineFirstSteps {
    fn backstop_due(&self) -> DateTime<Utc> {
        Utc::now() + FIRST_STEP_GRACE
    }

    fn take(&self, run_id: Uuid, backstop_id: Option<i64>) -> Taken<'_> {
        Box::pin(async move {
            let advanced =
                first_step::take(&self.db, &self.signer, &self.batcher, run_id, backstop_id)
                    .await?;
            Ok(match (advanced.status, advanced.step, advanced.view) {
                (Some(status), Some(step), Some(view)) => Some(FirstStep { status, step, view }),
                _ => None,
            })
        })
    }
}
