//! Carries out one remote command of a run and feeds its outcome back to the
//! run (see `engine::remote_calls`), with the commands the run issues next.

use apalis::prelude::{Attempt, BoxDynError, Data};

use crate::deps::JobDeps;
use crate::engine::messages::RunEffect;
use crate::jobs::engine_job;

pub use crate::engine::messages::EFFECT_QUEUE as JOB_NAME;

/// The provider's failures are the workflow's business (`remote_calls`); a
/// failure of the job itself (database, decoding, a bug) is retried by apalis
/// and, when it persists, parks the run and dead-letters the job (see
/// `engine::parking`).
pub async fn run(job: RunEffect, deps: Data<JobDeps>, attempt: Attempt) -> Result<(), BoxDynError> {
    engine_job(&deps, JOB_NAME, job.run_id, &attempt, async {
        let calls = deps.remote_calls();
        let advanced = calls.carry_out(&job, None).await?;
        calls.follow(advanced.issued).await
    })
    .await
}
