//! Runs: list, show (state, full history, signals, errors, dead jobs), retry
//! (re-drive a `failed` run from its failed step) and cancel (compensate and end).

use boxoffice_models::audit::{self, NewAuditEntry, actions};
use boxoffice_models::workflow_runs::{self, Run};
use boxoffice_models::{outbox, workflow_signals, workflow_steps};
use boxoffice_workflows::engine::RunStatus;
use boxoffice_workflows::operator::{
    ActionOutcome, Actor, DeadJob, OperatorError, RunDetail, RunSummary, SignalView, StepView,
};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::dead_letters::audit_job;
use super::{Operator, Tx, advance_error, other, other_chain};
use crate::engine::executor::advance_on;
use crate::engine::messages::{ADVANCE_QUEUE, AdvanceRun, EFFECT_QUEUE, RunEffect};
use crate::engine::parking::{Parked, unpark_locked};
use crate::engine::{EngineInput, Trigger};

/// The most runs one list returns.
pub const MAX_LIST: i64 = 1_000;

fn summary(run: &Run) -> RunSummary {
    RunSummary {
        id: run.id,
        kind: run.kind.clone(),
        status: run.status.clone(),
        step: run.step.clone(),
        version: run.version,
        attempts: run.attempts,
        last_error: run.last_error.clone(),
        created_at: run.created_at,
        updated_at: run.updated_at,
        finished_at: run.finished_at,
    }
}

impl Operator {
    pub async fn list_runs(
        &self,
        status: Option<&str>,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunSummary>, OperatorError> {
        if let Some(s) = status
            && RunStatus::parse(s).is_none()
        {
            return Err(OperatorError::Invalid(format!("unknown status {s:?}")));
        }
        // Only a registered kind names runs; anything else (a NUL among
        // them, which PostgreSQL's text cannot hold) is refused here.
        if let Some(k) = kind
            && crate::kinds::of(k).is_err()
        {
            return Err(OperatorError::Invalid(format!("unknown kind {k:?}")));
        }
        let mut conn = self.db.get().await.map_err(other)?;
        let runs = workflow_runs::list(&mut conn, status, kind, limit.clamp(1, MAX_LIST))
            .await
            .map_err(other)?;
        Ok(runs.iter().map(summary).collect())
    }

    pub async fn show_run(&self, id: Uuid) -> Result<RunDetail, OperatorError> {
        let (run, steps, signals) = {
            let mut conn = self.db.get().await.map_err(other)?;
            let run = workflow_runs::find(&mut conn, id)
                .await
                .map_err(other)?
                .ok_or(OperatorError::NotFound("run"))?;
            let steps = workflow_steps::list_for_run(&mut conn, id)
                .await
                .map_err(other)?;
            let signals = workflow_signals::list_for_run(&mut conn, id)
                .await
                .map_err(other)?;
            (run, steps, signals)
        };
        let dead_jobs = self.dead_jobs_of_run(id).await?;
        Ok(RunDetail {
            run: summary(&run),
            state: run.state.clone(),
            pending_effect: run.pending_effect.clone(),
            wake_at: run.wake_at,
            steps: steps
                .into_iter()
                .map(|s| StepView {
                    step: s.step,
                    attempt: s.attempt,
                    input: s.input,
                    outcome: s.outcome,
                    error: s.error,
                    version: s.version,
                    at: s.started_at,
                })
                .collect(),
            signals: signals
                .into_iter()
                .map(|s| SignalView {
                    name: s.name,
                    dedupe_key: s.dedupe_key,
                    payload: s.payload,
                    received_at: s.received_at,
                    consumed_at: s.consumed_at,
                })
                .collect(),
            dead_jobs,
        })
    }

    /// Re-drives a `failed` run from its failed step: a run parked by a poison
    /// job gets its status back and its step's message is queued again; a run
    /// the workflow failed (e.g. an automatic refund that failed for good) gets
    /// the workflow's `Retry`. The run's dead jobs are superseded and dropped.
    pub async fn retry_run(&self, id: Uuid, actor: &Actor) -> Result<ActionOutcome, OperatorError> {
        let mut conn = self.db.get().await.map_err(other)?;
        let signer = self.ticket_signer.clone();
        let (status, detail) = conn
            .transaction::<_, Tx, _>(async |conn| {
                let run = workflow_runs::lock(conn, id)
                    .await
                    .map_err(other)?
                    .ok_or(OperatorError::NotFound("run"))?;
                if run.status != RunStatus::Failed.as_str() {
                    return Err(OperatorError::Conflict(format!(
                        "run {id} is {}, not failed",
                        run.status
                    ))
                    .into());
                }
                let detail = if Parked::of(&run).is_some() {
                    unpark_locked(conn, &run, "retry")
                        .await
                        .map_err(other_chain)?;
                    redrive_locked(conn, &run).await.map_err(other_chain)?;
                    format!("resumed at step {}", run.step)
                } else {
                    let advanced =
                        advance_on(conn, &signer, id, Trigger::Operator(EngineInput::Retry))
                            .await
                            .map_err(|e| advance_error(id, e))?;
                    if !advanced.changed {
                        return Err(OperatorError::Conflict(format!(
                            "run {id} failed at step {} and its workflow has nothing to retry",
                            run.step
                        ))
                        .into());
                    }
                    format!("re-driven from step {}", run.step)
                };
                audit_run(conn, actor, actions::RUN_RETRY, id, &run, &detail).await?;
                let status = workflow_runs::find(conn, id)
                    .await
                    .map_err(other)?
                    .map(|r| r.status);
                Ok((status, detail))
            })
            .await
            .map_err(|Tx(e)| e)?;
        let jobs = self.forget_dead_of_run(id).await?;
        Ok(ActionOutcome {
            action: actions::RUN_RETRY.into(),
            run_id: Some(id),
            run_status: status,
            jobs,
            detail,
        })
    }

    /// Cancels a run that has not finished: the workflow compensates what was
    /// done and ends it. A parked run that was already compensating resumes.
    pub async fn cancel_run(
        &self,
        id: Uuid,
        actor: &Actor,
    ) -> Result<ActionOutcome, OperatorError> {
        self.cancel_run_inner(id, actor, None).await
    }

    pub(crate) async fn cancel_run_inner(
        &self,
        id: Uuid,
        actor: &Actor,
        discarding: Option<&DeadJob>,
    ) -> Result<ActionOutcome, OperatorError> {
        let mut conn = self.db.get().await.map_err(other)?;
        let signer = self.ticket_signer.clone();
        let (status, detail) = conn
            .transaction::<_, Tx, _>(async |conn| {
                let run = workflow_runs::lock(conn, id)
                    .await
                    .map_err(other)?
                    .ok_or(OperatorError::NotFound("run"))?;
                let advanced =
                    advance_on(conn, &signer, id, Trigger::Operator(EngineInput::Cancel))
                        .await
                        .map_err(|e| advance_error(id, e))?;
                let detail = if advanced.changed {
                    format!("cancelled at step {}", run.step)
                } else if Parked::of(&run)
                    .is_some_and(|p| p.resume_status() == RunStatus::Compensating)
                {
                    unpark_locked(conn, &run, "cancel")
                        .await
                        .map_err(other_chain)?;
                    redrive_locked(conn, &run).await.map_err(other_chain)?;
                    format!("compensation resumed at step {}", run.step)
                } else {
                    return Err(OperatorError::Conflict(format!(
                        "run {id} is {} at step {}: nothing to cancel",
                        run.status, run.step
                    ))
                    .into());
                };
                match discarding {
                    Some(job) => audit_job(
                        conn,
                        actor,
                        actions::DLQ_DISCARD,
                        job,
                        serde_json::json!({ "fate": "compensate", "detail": detail }),
                    )
                    .await
                    .map_err(other_chain)?,
                    None => audit_run(conn, actor, actions::RUN_CANCEL, id, &run, &detail).await?,
                }
                let status = workflow_runs::find(conn, id)
                    .await
                    .map_err(other)?
                    .map(|r| r.status);
                Ok((status, detail))
            })
            .await
            .map_err(|Tx(e)| e)?;
        let jobs = if discarding.is_none() {
            self.forget_dead_of_run(id).await?
        } else {
            Vec::new()
        };
        Ok(ActionOutcome {
            action: actions::RUN_CANCEL.into(),
            run_id: Some(id),
            run_status: status,
            jobs,
            detail,
        })
    }

    async fn forget_dead_of_run(&self, id: Uuid) -> Result<Vec<String>, OperatorError> {
        let mut ids = Vec::new();
        for job in self.dead_jobs_of_run(id).await? {
            self.forget_dead(&job.queue, &job.id).await?;
            ids.push(job.id);
        }
        Ok(ids)
    }
}

/// Queues what a resumed run needs: its pending remote command, and a poke
/// (which starts it, delivers its signals, fires its due timer).
async fn redrive_locked(conn: &mut AsyncPgConnection, run: &Run) -> anyhow::Result<()> {
    if let Some(effect) = RunEffect::pending_of(run)? {
        outbox::push(conn, EFFECT_QUEUE, &effect, None).await?;
    }
    outbox::push(conn, ADVANCE_QUEUE, &AdvanceRun::look_at(run.id), None).await?;
    Ok(())
}

async fn audit_run(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    action: &str,
    id: Uuid,
    before: &Run,
    detail: &str,
) -> Result<(), OperatorError> {
    audit::record(
        conn,
        &NewAuditEntry {
            actor_id: actor.user_id,
            action,
            target_type: "workflow_run",
            target_id: id.to_string(),
            details: serde_json::json!({
                "via": actor.via,
                "status_before": before.status,
                "step_before": before.step,
                "detail": detail,
            }),
            request_id: actor.request_id.as_deref(),
        },
    )
    .await
    .map_err(other)?;
    Ok(())
}
