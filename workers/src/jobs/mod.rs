//! One module per job kind. Jobs must be idempotent: Redis delivers at least
//! once, and a crashed worker's jobs are delivered again.

pub mod advance_run;
pub mod cleanup;
pub mod dispatch_waitlists;
pub mod plan_reminders;
pub mod purge_sessions;
pub mod run_effect;
pub mod send_email;
pub mod sweep_runs;

use std::future::Future;

use apalis::prelude::{Attempt, BoxDynError};
use uuid::Uuid;

use crate::deps::JobDeps;
use crate::engine::parking::on_job_error;

/// Runs the work of an engine job (one about run `run_id`) with the job
/// metrics. A failure goes to `engine::parking`: retried by apalis and, when
/// it persists, the run is parked and the job dead-lettered.
async fn engine_job(
    deps: &JobDeps,
    queue: &'static str,
    run_id: Uuid,
    attempt: &Attempt,
    work: impl Future<Output = anyhow::Result<()>>,
) -> Result<(), BoxDynError> {
    let started = std::time::Instant::now();
    metrics::counter!("jobs_started_total", "queue" => queue).increment(1);
    match work.await {
        Ok(()) => {
            metrics::counter!("jobs_succeeded_total", "queue" => queue).increment(1);
            metrics::histogram!("job_duration_seconds", "queue" => queue)
                .record(started.elapsed().as_secs_f64());
            Ok(())
        }
        Err(err) => Err(on_job_error(&deps.db, run_id, queue, attempt.current(), err).await),
    }
}
