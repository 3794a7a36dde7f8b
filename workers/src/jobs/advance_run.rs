//! "Look at run R": start it, deliver its pending signals, fire its due timer.
//! Carries only the run id, so duplicates and stale copies are harmless.

use apalis::prelude::{BoxDynError, Data};

use crate::deps::JobDeps;
use crate::engine::messages::AdvanceRun;
use crate::engine::{Trigger, advance};

pub use crate::engine::messages::ADVANCE_QUEUE as JOB_NAME;

pub async fn run(job: AdvanceRun, deps: Data<JobDeps>) -> Result<(), BoxDynError> {
    let advanced = advance(&deps.db, &deps.ticket_signer, job.run_id, Trigger::Poke).await?;
    if advanced.queued {
        deps.relay_nudge.notify_one();
    }
    if advanced.changed {
        metrics::counter!("workflow_transitions_total").increment(1);
    }
    Ok(())
}
