//! The API's [`FirstSteps`] over the workers' engine: a `serve` process takes
//! the first step (the hold) of the checkouts it starts, through its own
//! [`HoldBatcher`].

use std::sync::Arc;

use boxoffice_api::first_steps::{FirstStep, FirstSteps, Taken};
use boxoffice_models::DbPool;
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::workflow_runs::Run;
use boxoffice_workers::engine::HoldBatcher;
use boxoffice_workers::engine::first_step::{self, FIRST_STEP_GRACE};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;

pub struct EngineFirstSteps {
    signer: Arc<TicketSigner>,
    batcher: HoldBatcher,
}

impl EngineFirstSteps {
    /// `holds_db` is the batcher's own pool: a request keeps its connection
    /// while its hold is taken, so the batch statement must not wait for one
    /// of the requests' connections.
    pub fn new(holds_db: DbPool, signer: TicketSigner) -> Self {
        EngineFirstSteps {
            batcher: HoldBatcher::new(holds_db),
            signer: Arc::new(signer),
        }
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
            let advanced =
                first_step::take(conn, &self.signer, &self.batcher, run, backstop_id).await?;
            Ok(match (advanced.status, advanced.step, advanced.view) {
                (Some(status), Some(step), Some(view)) => Some(FirstStep { status, step, view }),
                _ => None,
            })
        })
    }
}
