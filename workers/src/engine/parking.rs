//! Poison jobs: a job of the engine that keeps failing (a bug, a state that
//! does not decode, a local effect that errors) is not retried 25 times by
//! apalis-redis. After [`MAX_JOB_ATTEMPTS`] its run is *parked*: status
//! `failed`, a `failed` history row, and in `last_error` what is needed to
//! resume it; the job then aborts into `{queue}:dead`.
//!
//! Resuming: an operator retries the dead job (`boxoffice dlq retry`) or the
//! run (`boxoffice runs retry`): the run gets back the status it had (kept in
//! `last_error.resume_status`) in the transaction that queues its job again, so
//! a retried run is never left `failed`. While parked, the executor ignores
//! every message for the run except an operator's ([`super::Trigger::Operator`]).
//!
//! Transient failures (Postgres gone or restarting, a broken connection) do
//! not count: they are left to apalis's own retries and the sweep, so a
//! database restart never parks runs.

use anyhow::Context;
use boxoffice_models::DbPool;
use boxoffice_models::workflow_runs::{self, Run};
use boxoffice_models::workflow_steps::{self, NewStepRecord};
use boxoffice_workflows::engine::RunStatus;
use chrono::Utc;
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Attempts of one engine job (apalis counts from 1) before its run is parked
/// and the job dead-lettered. With apalis-redis's back-off (attempt n waits n
/// seconds) five attempts take about ten seconds.
pub const MAX_JOB_ATTEMPTS: usize = 5;

/// What `last_error` holds for a parked run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Parked {
    /// Always true for a parked run; false once an operator failed it for good.
    pub parked: bool,
    /// The status the run had; it gets it back when it resumes.
    pub resume_status: String,
    /// The step it was at.
    pub step: String,
    /// The job queue and how many attempts it made.
    pub queue: String,
    pub job_attempts: usize,
    pub error: String,
}

impl Parked {
    /// The parking record of a run parked by a poison job, if it is one.
    pub fn of(run: &Run) -> Option<Parked> {
        if run.status != RunStatus::Failed.as_str() {
            return None;
        }
        let parked: Parked = serde_json::from_value(run.last_error.clone()?).ok()?;
        parked.parked.then_some(parked)
    }

    pub fn resume_status(&self) -> RunStatus {
        RunStatus::parse(&self.resume_status).unwrap_or(RunStatus::Running)
    }
}

/// True when the error says "try again later" rather than "this job is broken":
/// no database connection, a connection that broke, a serialization conflict,
/// a lock wait that timed out.
pub fn is_transient(err: &(dyn std::error::Error + 'static)) -> bool {
    use diesel::result::{DatabaseErrorKind, Error as DieselError};
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if e.is::<diesel_async::pooled_connection::deadpool::PoolError>()
            || e.is::<std::io::Error>()
        {
            return true;
        }
        if let Some(d) = e.downcast_ref::<DieselError>() {
            // SQLSTATE 55P03 (`lock_timeout` ran out: a row stayed locked
            // longer than our sessions wait) is contention, not a broken job.
            // diesel does not expose the SQLSTATE, only the server's message,
            // which our servers give in English (`lc_messages` C).
            if let DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) = d
                && info.message().contains("lock timeout")
            {
                return true;
            }
            return matches!(
                d,
                DieselError::DatabaseError(
                    DatabaseErrorKind::ClosedConnection
                        | DatabaseErrorKind::UnableToSendCommand
                        | DatabaseErrorKind::SerializationFailure,
                    _
                ) | DieselError::BrokenTransactionManager
            );
        }
        cause = e.source();
    }
    false
}

/// Parks the run: its `queue` job failed `job_attempts` times with `error`.
/// Finished runs are left alone (the job is dead-lettered all the same).
/// Returns the kind of the run it parked, if it parked one.
pub async fn park(
    db: &DbPool,
    run_id: Uuid,
    queue: &str,
    job_attempts: usize,
    error: &str,
) -> anyhow::Result<Option<String>> {
    let mut conn = db.get().await?;
    conn.transaction::<_, anyhow::Error, _>(async |conn| {
        let Some(run) = workflow_runs::lock(conn, run_id).await? else {
            return Ok(None);
        };
        let status = RunStatus::parse(&run.status).context("unknown run status")?;
        if status.is_finished() {
            return Ok(None);
        }
        let record = Parked {
            parked: true,
            resume_status: run.status.clone(),
            step: run.step.clone(),
            queue: queue.to_owned(),
            job_attempts,
            error: error.to_owned(),
        };
        workflow_runs::park(conn, run_id, &serde_json::to_value(&record)?).await?;
        workflow_steps::record(
            conn,
            &NewStepRecord {
                run_id,
                step: run.step.clone(),
                attempt: job_attempts as i32,
                input: format!("job:{queue}"),
                outcome: "failed".into(),
                error: Some(error.to_owned()),
                version: run.version,
                started_at: Utc::now(),
            },
        )
        .await?;
        Ok(Some(run.kind))
    })
    .await
}

/// Gives a locked, parked run back the status it had; records it in its
/// history. Returns false when the run is not parked.
pub async fn unpark_locked(
    conn: &mut diesel_async::AsyncPgConnection,
    run: &Run,
    why: &str,
) -> anyhow::Result<bool> {
    let Some(parked) = Parked::of(run) else {
        return Ok(false);
    };
    workflow_runs::unpark(conn, run.id, parked.resume_status().as_str()).await?;
    workflow_steps::record(
        conn,
        &NewStepRecord {
            run_id: run.id,
            step: run.step.clone(),
            attempt: 1,
            input: format!("operator:{why}"),
            outcome: "advanced".into(), // the check constraint allows no "resumed"; `input` says what happened
            error: None,
            version: run.version,
            started_at: Utc::now(),
        },
    )
    .await?;
    Ok(true)
}

/// What an engine job handler does with its error: below the limit (or a
/// transient error) apalis retries; at the limit the run is parked and the job
/// aborted into the dead letters.
pub async fn on_job_error(
    db: &DbPool,
    run_id: Uuid,
    queue: &'static str,
    attempt: usize,
    err: anyhow::Error,
) -> apalis::prelude::BoxDynError {
    if attempt < MAX_JOB_ATTEMPTS || is_transient(err.as_ref()) {
        metrics::counter!("jobs_retried_total", "queue" => queue).increment(1);
        tracing::warn!(run_id = %run_id, queue, attempt, error = format!("{err:#}"), "job failed; apalis retries it");
        return err.into();
    }
    let message = format!("{err:#}");
    match park(db, run_id, queue, attempt, &message).await {
        Ok(parked) => {
            tracing::error!(run_id = %run_id, queue, attempt, parked = parked.is_some(), error = %message, "job keeps failing: run parked, job dead-lettered");
            metrics::counter!("jobs_dead_total", "queue" => queue).increment(1);
            if let Some(kind) = parked {
                metrics::counter!("workflow_runs_parked_total", "kind" => kind).increment(1);
            }
            Box::new(apalis::prelude::AbortError::new(err))
        }
        // Could not even record it (the database went away): keep retrying.
        Err(park_err) => {
            tracing::warn!(run_id = %run_id, queue, error = %park_err, "parking the run failed; apalis retries the job");
            err.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind, Error as DieselError};

    use super::is_transient;

    fn db_error(kind: DatabaseErrorKind, message: &str) -> anyhow::Error {
        DieselError::DatabaseError(kind, Box::new(message.to_owned())).into()
    }

    #[test]
    fn a_lock_timeout_is_retried_not_counted_towards_parking() {
        let err = db_error(
            DatabaseErrorKind::Unknown,
            "canceling statement due to lock timeout",
        )
        .context("advancing the run");
        assert!(is_transient(err.as_ref()));
    }

    #[test]
    fn a_broken_job_is_not_transient() {
        let err = db_error(
            DatabaseErrorKind::CheckViolation,
            "new row violates check constraint",
        );
        assert!(!is_transient(err.as_ref()));
        let other = db_error(DatabaseErrorKind::Unknown, "division by zero");
        assert!(!is_transient(other.as_ref()));
        let serialization = db_error(
            DatabaseErrorKind::SerializationFailure,
            "could not serialize",
        );
        assert!(is_transient(serialization.as_ref()));
    }
}
