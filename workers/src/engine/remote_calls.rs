//! Carrying out a run's remote command (a call to the payment provider,
//! through the run's kind) and feeding its outcome back to the run: what the
//! effect queue's jobs do, and what a process does right after a commit that
//! issued a command (`Dispatch::Inline`), a worker's job or the API process
//! that took a checkout's first step.
//!
//! Idempotent: the provider gets the idempotency key `"{run_id}:{effect key}"`,
//! so a redelivered or duplicated call has the same result, and the run ignores
//! an outcome it no longer waits for. A retryable failure is tried again through
//! the outbox with exponential backoff and jitter; when attempts run out, or the
//! provider refuses for good, the run receives the failure and compensates (or
//! parks for an operator).

use std::sync::Arc;

use boxoffice_models::DbPool;
use boxoffice_models::outbox;
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_workflows::retry::RetryPolicy;
use rand::RngExt;
use tokio::sync::Notify;

use super::advance_io::{Advanced, Dispatch, EngineInput, Issued, Trigger};
use super::executor::advance_holding;
use super::messages::{EFFECT_QUEUE, RunEffect};
use super::resend::schedule_retry;
use crate::adapters::payments::PaymentProvider;
use crate::kinds;

/// What carrying out a remote command takes.
#[derive(Clone)]
pub struct RemoteCalls {
    pub db: DbPool,
    pub ticket_signer: Arc<TicketSigner>,
    /// The payment provider, behind this process's circuit breaker.
    pub payments: Arc<dyn PaymentProvider>,
    /// Wakes this process's outbox relay after a commit that queued messages
    /// (a process without a relay passes one nobody waits on: the outbox's
    /// trigger wakes the workers' relays at every message due at once).
    pub relay_nudge: Arc<Notify>,
}

impl RemoteCalls {
    /// Carries out, one after the other, the remote commands the run issues
    /// while it is advanced here ([`Dispatch::Inline`]), starting with
    /// `issued`, and drops each one's backstop message once it is done: two
    /// steps of a run follow each other without a trip through the outbox,
    /// Redis and another worker.
    pub async fn follow(&self, mut issued: Option<Issued>) -> anyhow::Result<()> {
        while let Some(command) = issued {
            let backstop = Some(command.backstop_id);
            issued = self.carry_out(&command.effect, backstop).await?.issued;
        }
        Ok(())
    }

    /// [`Self::follow`] where no job stands behind the call to try it again
    /// (the API process, after a run's first step): on a failure the command
    /// goes to the workers at once instead of waiting for its backstop. A
    /// command that was carried out after all is harmless to send again (see
    /// the module docs).
    pub async fn follow_or_hand_over(&self, issued: Issued) {
        let effect = issued.effect.clone();
        let Err(e) = self.follow(Some(issued)).await else {
            return;
        };
        tracing::warn!(run_id = %effect.run_id, error = %format!("{e:#}"), "a remote command failed to be carried out; the workers take it");
        let handed = async {
            let conn = self.db.get().await?;
            outbox::push(&conn, EFFECT_QUEUE, &effect, None).await?;
            anyhow::Ok(())
        };
        if let Err(h) = handed.await {
            tracing::warn!(run_id = %effect.run_id, error = %format!("{h:#}"), "the remote command waits for its backstop");
        }
    }

    /// Calls the provider and feeds the outcome to the run; returns what the
    /// run did with it (a remote command it issued next is for [`Self::follow`]).
    /// A command carried out after a commit has a `backstop` message: it is
    /// deleted in the transaction that feeds the outcome to the run, or in the
    /// one that queues the call's retry.
    pub async fn carry_out(
        &self,
        job: &RunEffect,
        backstop: Option<i64>,
    ) -> anyhow::Result<Advanced> {
        let kind = kinds::of(&job.kind)?;
        let (_, effect) = kind.remote_names(&job.command)?;
        let started = std::time::Instant::now();
        let result = kind
            .call_remote(self.payments.as_ref(), job.run_id, &job.command)
            .await?;
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
                schedule_retry(&self.db, job, delay, &err.to_string(), backstop).await?;
                self.relay_nudge.notify_one();
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
        let advanced = advance_holding(
            &self.db,
            &self.ticket_signer,
            None,
            job.run_id,
            Trigger::Input(input),
            Dispatch::Inline,
            backstop,
        )
        .await?;
        if advanced.queued {
            self.relay_nudge.notify_one();
        }
        Ok(advanced)
    }
}
