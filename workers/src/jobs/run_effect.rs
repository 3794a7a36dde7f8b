//! Carries out one remote command of a run (a call to the payment provider,
//! through the run's kind) and feeds its outcome back to the run.
//!
//! Idempotent: the provider gets the idempotency key `"{run_id}:{effect key}"`,
//! so a redelivered or duplicated job makes the same call with the same result,
//! and the run ignores an outcome it no longer waits for. Retryable failures are
//! tried again through the outbox with exponential backoff and jitter; when
//! attempts run out, or the provider refuses for good, the run receives the
//! failure and compensates (or parks for an operator).

use apalis::prelude::{Attempt, BoxDynError, Data};
use boxoffice_models::outbox;
use boxoffice_workflows::retry::RetryPolicy;
use rand::RngExt;

use crate::deps::JobDeps;
use crate::engine::messages::RunEffect;
use crate::engine::resend::schedule_retry;
use crate::engine::{Advanced, Dispatch, EngineInput, Trigger, advance};
use crate::jobs::engine_job;
use crate::kinds;

pub use crate::engine::messages::EFFECT_QUEUE as JOB_NAME;

/// The provider's failures are the workflow's business (above); a failure of
/// the job itself (database, decoding, a bug) is retried by apalis and, when it
/// persists, parks the run and dead-letters the job (see `engine::parking`).
pub async fn run(job: RunEffect, deps: Data<JobDeps>, attempt: Attempt) -> Result<(), BoxDynError> {
    engine_job(&deps, JOB_NAME, job.run_id, &attempt, async {
        let advanced = carry_out(&job, &deps).await?;
        follow(&deps, advanced).await
    })
    .await
}

/// Carries out, one after the other, the remote commands the run issues while
/// this job advances it ([`Dispatch::Inline`]), and drops each one's backstop
/// message once it is done: two steps of a run follow each other without a
/// trip through the outbox, Redis and another worker.
pub async fn follow(deps: &JobDeps, mut advanced: Advanced) -> anyhow::Result<()> {
    while let Some(issued) = advanced.issued.take() {
        advanced = carry_out(&issued.effect, deps).await?;
        let mut conn = deps.db.get().await?;
        outbox::delete(&mut conn, &[issued.backstop_id]).await?;
    }
    Ok(())
}

/// Calls the provider and feeds the outcome to the run; returns what the run
/// did with it (a remote command it issued next is for [`follow`]).
async fn carry_out(job: &RunEffect, deps: &JobDeps) -> anyhow::Result<Advanced> {
    let kind = kinds::of(&job.kind)?;
    let (_, effect) = kind.remote_names(&job.command)?;
    let started = std::time::Instant::now();
    let result = kind.call_remote(deps, job.run_id, &job.command).await?;
    metrics::histogram!("remote_effect_duration_seconds", "effect" => effect)
        .record(started.elapsed().as_secs_f64());
    let key = job.key.clone();
    let input = match result {
        Ok(outcome) => EngineInput::RemoteDone { key, outcome },
        Err(err) if err.is_retryable() && RetryPolicy::REMOTE.allows_another(job.attempt) => {
            let jitter: f64 = rand::rng().random();
            let delay = RetryPolicy::REMOTE.delay(job.attempt - 1, jitter);
            tracing::warn!(run_id = %job.run_id, effect, attempt = job.attempt, error = %err, ?delay, "remote effect failed; retrying");
            metrics::counter!("remote_effect_retries_total", "effect" => effect).increment(1);
            schedule_retry(&deps.db, job, delay, &err.to_string()).await?;
            deps.relay_nudge.notify_one();
            return Ok(Advanced::default());
        }
        Err(err) => {
            tracing::error!(run_id = %job.run_id, effect, attempt = job.attempt, error = %err, "remote effect failed for good");
            metrics::counter!("remote_effect_failures_total", "effect" => effect).increment(1);
            // The workflow gets a stable code; the provider's own text stays
            // in the log above (and in the run's history of retries).
            EngineInput::RemoteFailed {
                key,
                error: err.code().as_str().to_owned(),
                detail: err.to_string(),
            }
        }
    };
    let advanced = advance(
        &deps.db,
        &deps.ticket_signer,
        job.run_id,
        Trigger::Input(input),
        Dispatch::Inline,
    )
    .await?;
    if advanced.queued {
        deps.relay_nudge.notify_one();
    }
    Ok(advanced)
}
