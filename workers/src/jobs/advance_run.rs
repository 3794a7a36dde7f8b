//! "Look at run R": start it, deliver its pending signals, fire its due timer.
//! Carries only the run id (and whether the run is past its start), so
//! duplicates and stale copies are harmless.

use apalis::prelude::{Attempt, BoxDynError, Data};

use crate::deps::JobDeps;
use crate::engine::messages::AdvanceRun;
use crate::engine::{Dispatch, Trigger, advance_holding, advance_past_start};
use crate::jobs::engine_job;

pub use crate::engine::messages::ADVANCE_QUEUE as JOB_NAME;

/// A failure is retried by apalis; one that persists parks the run and
/// dead-letters the job (see `engine::parking`).
pub async fn run(
    job: AdvanceRun,
    deps: Data<JobDeps>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    engine_job(&deps, JOB_NAME, job.run_id, &attempt, async {
        let advanced = if job.past_start {
            advance_past_start(&deps.db, &deps.ticket_signer, job.run_id, Dispatch::Inline).await?
        } else {
            advance_holding(
                &deps.db,
                &deps.ticket_signer,
                Some(&deps.holds),
                job.run_id,
                Trigger::Poke,
                Dispatch::Inline,
                None,
            )
            .await?
        };
        if advanced.queued {
            deps.relay_nudge.notify_one();
        }
        // The run's next remote command, if it issued one, is carried out here.
        deps.remote_calls().follow(advanced.issued).await
    })
    .await
}
