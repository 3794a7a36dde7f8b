//! "Look at run R": start it, deliver its pending signals, fire its due timer.
//! Carries only the run id, so duplicates and stale copies are harmless.

use apalis::prelude::{Attempt, BoxDynError, Data};

use crate::deps::JobDeps;
use crate::engine::messages::AdvanceRun;
use crate::engine::parking::on_job_error;
use crate::engine::{Dispatch, Trigger, advance};
use crate::jobs::run_effect;

pub use crate::engine::messages::ADVANCE_QUEUE as JOB_NAME;

/// A failure is retried by apalis; one that persists parks the run and
/// dead-letters the job (see `engine::parking`).
pub async fn run(
    job: AdvanceRun,
    deps: Data<JobDeps>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let started = std::time::Instant::now();
    metrics::counter!("jobs_started_total", "queue" => JOB_NAME).increment(1);
    let advanced = advance(
        &deps.db,
        &deps.ticket_signer,
        job.run_id,
        Trigger::Poke,
        Dispatch::Inline,
    )
    .await;
    let changed = advanced.as_ref().is_ok_and(|a| a.changed);
    let queued = advanced.as_ref().is_ok_and(|a| a.queued);
    // The run's next remote command, if it issued one, is carried out here.
    let followed = match advanced {
        Ok(advanced) => run_effect::follow(&deps, advanced).await,
        Err(err) => Err(err),
    };
    if let Err(err) = followed {
        return Err(on_job_error(&deps.db, job.run_id, JOB_NAME, attempt.current(), err).await);
    }
    metrics::counter!("jobs_succeeded_total", "queue" => JOB_NAME).increment(1);
    metrics::histogram!("job_duration_seconds", "queue" => JOB_NAME)
        .record(started.elapsed().as_secs_f64());
    if queued {
        deps.relay_nudge.notify_one();
    }
    if changed {
        metrics::counter!("workflow_transitions_total").increment(1);
    }
    Ok(())
}
