//! Dead-lettered jobs: list, show, retry (re-push the decoded args with a new
//! id through the outbox, so the queue depth bound holds, then drop the dead
//! id) and discard (deciding the run's fate first, so nothing is left half-done).

use std::collections::HashMap;

use boxoffice_models::audit::{self, NewAuditEntry, actions};
use boxoffice_models::outbox;
use boxoffice_models::workflow_runs;
use boxoffice_models::workflow_steps::{self, NewStepRecord};
use boxoffice_workflows::engine::RunStatus;
use boxoffice_workflows::operator::{ActionOutcome, Actor, DeadJob, Fate, OperatorError};
use chrono::{DateTime, TimeZone, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::{Operator, Tx, other, other_chain};
use crate::engine::executor::money_at_stake;
use crate::engine::parking::{Parked, unpark_locked};
use crate::queue;
use crate::registry::QUEUES;

impl Operator {
    fn queues_of(&self, only: Option<&str>) -> Result<Vec<&'static str>, OperatorError> {
        match only {
            None => Ok(QUEUES.to_vec()),
            Some(q) => QUEUES
                .iter()
                .find(|name| **name == q)
                .map(|name| vec![*name])
                .ok_or_else(|| {
                    OperatorError::Invalid(format!(
                        "unknown queue {q:?}; queues: {}",
                        QUEUES.join(", ")
                    ))
                }),
        }
    }

    /// Dead jobs, oldest first, of one queue or all.
    pub async fn dead_jobs(&self, queue: Option<&str>) -> Result<Vec<DeadJob>, OperatorError> {
        let mut jobs = Vec::new();
        for name in self.queues_of(queue)? {
            let config = queue::config(&self.prefix, name);
            let mut conn = self.redis.clone();
            let ids: Vec<String> = redis::cmd("SMEMBERS")
                .arg(config.dead_jobs_set())
                .query_async(&mut conn)
                .await
                .map_err(other)?;
            for id in ids {
                if let Some(job) = self.read_dead(name, &id).await? {
                    jobs.push(job);
                }
            }
        }
        jobs.sort_by_key(|j| std::cmp::Reverse(j.age_secs));
        self.add_steps(&mut jobs).await?;
        Ok(jobs)
    }

    /// One dead job, looked up in every queue.
    pub async fn dead_job(&self, id: &str) -> Result<DeadJob, OperatorError> {
        for name in QUEUES {
            let config = queue::config(&self.prefix, name);
            let mut conn = self.redis.clone();
            let dead: bool = redis::cmd("SISMEMBER")
                .arg(config.dead_jobs_set())
                .arg(id)
                .query_async(&mut conn)
                .await
                .map_err(other)?;
            if dead && let Some(job) = self.read_dead(name, id).await? {
                let mut jobs = vec![job];
                self.add_steps(&mut jobs).await?;
                return Ok(jobs.remove(0));
            }
        }
        Err(OperatorError::NotFound("dead job"))
    }

    /// The dead jobs of one run.
    pub async fn dead_jobs_of_run(&self, run_id: Uuid) -> Result<Vec<DeadJob>, OperatorError> {
        Ok(self
            .dead_jobs(None)
            .await?
            .into_iter()
            .filter(|j| j.run_id == Some(run_id))
            .collect())
    }

    async fn read_dead(
        &self,
        queue_name: &str,
        id: &str,
    ) -> Result<Option<DeadJob>, OperatorError> {
        let config = queue::config(&self.prefix, queue_name);
        let mut conn = self.redis.clone();
        let (data, meta): (Option<Vec<u8>>, HashMap<String, String>) = redis::pipe()
            .cmd("HGET")
            .arg(config.job_data_hash())
            .arg(id)
            .cmd("HGETALL")
            .arg(format!("{}:{id}", config.job_meta_hash()))
            .query_async(&mut conn)
            .await
            .map_err(other)?;
        let Some(data) = data else { return Ok(None) };
        let args: serde_json::Value =
            serde_json::from_slice(&data).unwrap_or(serde_json::Value::Null);
        let run_id = args
            .get("run_id")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok());
        let last_error =
            meta.get("result")
                .map(|r| match serde_json::from_str::<serde_json::Value>(r) {
                    Ok(serde_json::Value::Object(o)) if o.contains_key("Err") => o["Err"]
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| o["Err"].to_string()),
                    _ => r.clone(),
                });
        let dead_at: Option<DateTime<Utc>> = meta
            .get("done_at")
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|t| Utc.timestamp_opt(t, 0).single());
        Ok(Some(DeadJob {
            id: id.to_owned(),
            queue: queue_name.to_owned(),
            run_id,
            step: None,
            attempts: meta
                .get("attempts")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
            last_error,
            status: meta.get("status").cloned(),
            age_secs: dead_at.map(|at| (Utc::now() - at).num_seconds()),
            dead_at,
            args,
        }))
    }

    /// Fills in each job's step: the run's current step.
    async fn add_steps(&self, jobs: &mut [DeadJob]) -> Result<(), OperatorError> {
        if jobs.iter().all(|j| j.run_id.is_none()) {
            return Ok(());
        }
        let mut conn = self.db.get().await.map_err(other)?;
        for job in jobs.iter_mut() {
            if let Some(run_id) = job.run_id
                && let Some(run) = workflow_runs::find(&mut conn, run_id)
                    .await
                    .map_err(other)?
            {
                job.step = Some(run.step);
            }
        }
        Ok(())
    }

    /// Removes a dead job from apalis's keys.
    pub(crate) async fn forget_dead(
        &self,
        queue_name: &str,
        id: &str,
    ) -> Result<(), OperatorError> {
        let config = queue::config(&self.prefix, queue_name);
        let mut conn = self.redis.clone();
        redis::pipe()
            .cmd("SREM")
            .arg(config.dead_jobs_set())
            .arg(id)
            .ignore()
            .cmd("HDEL")
            .arg(config.job_data_hash())
            .arg(id)
            .ignore()
            .cmd("DEL")
            .arg(format!("{}:{id}", config.job_meta_hash()))
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(other)
    }

    /// Retries one dead job: its run (if parked) gets its status back and the
    /// job's args are queued again through the outbox, in one transaction.
    pub async fn retry_dead(
        &self,
        id: &str,
        actor: &Actor,
    ) -> Result<ActionOutcome, OperatorError> {
        let job = self.dead_job(id).await?;
        let run_status = self.requeue(&job, actor).await?;
        self.forget_dead(&job.queue, &job.id).await?;
        Ok(ActionOutcome {
            action: actions::DLQ_RETRY.into(),
            run_id: job.run_id,
            run_status,
            jobs: vec![job.id],
            detail: format!("re-queued on {}", job.queue),
        })
    }

    /// Retries every dead job (of one queue).
    pub async fn retry_all_dead(
        &self,
        queue: Option<&str>,
        actor: &Actor,
    ) -> Result<ActionOutcome, OperatorError> {
        let jobs = self.dead_jobs(queue).await?;
        let mut ids = Vec::new();
        for job in &jobs {
            self.requeue(job, actor).await?;
            self.forget_dead(&job.queue, &job.id).await?;
            ids.push(job.id.clone());
        }
        Ok(ActionOutcome {
            action: actions::DLQ_RETRY.into(),
            run_id: None,
            run_status: None,
            detail: format!("{} job(s) re-queued", ids.len()),
            jobs: ids,
        })
    }

    async fn requeue(&self, job: &DeadJob, actor: &Actor) -> Result<Option<String>, OperatorError> {
        let mut conn = self.db.get().await.map_err(other)?;
        conn.transaction::<_, anyhow::Error, _>(async |conn| {
            let mut status = None;
            if let Some(run_id) = job.run_id
                && let Some(run) = workflow_runs::lock(conn, run_id).await?
            {
                unpark_locked(conn, &run, "dlq_retry").await?;
                status = workflow_runs::find(conn, run_id).await?.map(|r| r.status);
            }
            outbox::push(conn, &job.queue, &job.args, None).await?;
            audit_job(conn, actor, actions::DLQ_RETRY, job, serde_json::json!({})).await?;
            Ok(status)
        })
        .await
        .map_err(other_chain)
    }

    /// Discards a dead job after settling its run: `Compensate` undoes what the
    /// run did and ends it (the workflow's cancel; a run already compensating
    /// resumes its compensation), `Fail` leaves it `failed` for good and
    /// releases its holds and coupon use.
    pub async fn discard_dead(
        &self,
        id: &str,
        fate: Fate,
        actor: &Actor,
    ) -> Result<ActionOutcome, OperatorError> {
        let job = self.dead_job(id).await?;
        let mut run_status = None;
        let detail;
        match (job.run_id, fate) {
            (Some(run_id), Fate::Compensate) => {
                let outcome = self.cancel_run_inner(run_id, actor, Some(&job)).await?;
                run_status = outcome.run_status;
                detail = format!("discarded; the run compensates: {}", outcome.detail);
            }
            (Some(run_id), Fate::Fail) => {
                let (status, warning) = self.fail_for_good(run_id, &job, actor).await?;
                run_status = Some(status);
                detail = match warning {
                    Some(warning) => format!("discarded; the run stays failed; {warning}"),
                    None => "discarded; the run stays failed".into(),
                };
            }
            (None, _) => {
                let mut conn = self.db.get().await.map_err(other)?;
                audit_job(
                    &mut conn,
                    actor,
                    actions::DLQ_DISCARD,
                    &job,
                    serde_json::json!({ "fate": fate }),
                )
                .await
                .map_err(other_chain)?;
                detail = "discarded".into();
            }
        }
        self.forget_dead(&job.queue, &job.id).await?;
        Ok(ActionOutcome {
            action: actions::DLQ_DISCARD.into(),
            run_id: job.run_id,
            run_status,
            jobs: vec![job.id],
            detail,
        })
    }

    async fn fail_for_good(
        &self,
        run_id: Uuid,
        job: &DeadJob,
        actor: &Actor,
    ) -> Result<(String, Option<&'static str>), OperatorError> {
        let mut conn = self.db.get().await.map_err(other)?;
        conn.transaction::<_, Tx, _>(async |conn| {
            let run = workflow_runs::lock(conn, run_id).await.map_err(other)?.ok_or(OperatorError::NotFound("run"))?;
            let mut warning = None;
            if let Some(mut parked) = Parked::of(&run) {
                match money_at_stake(&run) {
                    Ok(Some(money)) => {
                        return Err(OperatorError::Conflict(format!(
                            "run {run_id} has the participant's {money}: discard with fate compensate, which cancels or refunds it"
                        ))
                        .into());
                    }
                    Ok(None) => {}
                    Err(_) => warning = Some(UNREADABLE_MONEY),
                }
                // Failed for good is finished: the run gives back its seats and
                // its coupon use now, as its compensation would, or nothing
                // would ever release them (the sweep only wakes live runs).
                crate::kinds::of(&run.kind)
                    .map_err(other)?
                    .abandon(conn, run_id)
                    .await
                    .map_err(other)?;
                parked.parked = false;
                let mut record = serde_json::to_value(&parked).map_err(other)?;
                record["discarded"] = serde_json::Value::Bool(true);
                workflow_runs::set_last_error(conn, run_id, &record).await.map_err(other)?;
                workflow_steps::record(
                    conn,
                    &NewStepRecord {
                        run_id,
                        step: run.step.clone(),
                        attempt: 1,
                        input: "operator:dlq_discard".into(),
                        outcome: "failed".into(),
                        error: Some("failed for good by an operator".into()),
                        version: run.version,
                        started_at: Utc::now(),
                    },
                )
                .await
                .map_err(other)?;
            } else if !RunStatus::parse(&run.status).is_some_and(RunStatus::is_finished) {
                return Err(OperatorError::Conflict(format!(
                    "run {run_id} is {} and was not parked by this job: retry the job, or cancel the run",
                    run.status
                )).into());
            }
            audit_job(conn, actor, actions::DLQ_DISCARD, job, serde_json::json!({ "fate": "fail", "warning": warning }))
                .await
                .map_err(other_chain)?;
            Ok((run.status, warning))
        })
        .await
        .map_err(|Tx(e)| e)
    }
}

const UNREADABLE_MONEY: &str =
    "its state does not decode, so settle any payment of this run at the provider by hand";

pub(super) async fn audit_job(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    action: &str,
    job: &DeadJob,
    mut details: serde_json::Value,
) -> anyhow::Result<()> {
    details["queue"] = job.queue.clone().into();
    details["run_id"] = serde_json::to_value(job.run_id)?;
    details["via"] = actor.via.into();
    details["last_error"] = serde_json::to_value(&job.last_error)?;
    audit::record(
        conn,
        &NewAuditEntry {
            actor_id: actor.user_id,
            action,
            target_type: "job",
            target_id: job.id.clone(),
            details,
            request_id: actor.request_id.as_deref(),
        },
    )
    .await?;
    Ok(())
}
