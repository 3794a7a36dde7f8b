//! Deletes sessions that expired or were revoked long enough ago that no access
//! token can still name them. Idempotent: a second run finds nothing to delete.

use apalis::prelude::{BoxDynError, Data, WorkerContext};
use boxoffice_models::scheduled_job_runs::{self, NewScheduledJobRun};
use boxoffice_models::sessions;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::deps::JobDeps;

pub const JOB_NAME: &str = "purge_sessions";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PurgeSessions {
    /// The schedule tick this run belongs to.
    pub scheduled_for: DateTime<Utc>,
}

pub async fn run(
    job: PurgeSessions,
    deps: Data<JobDeps>,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    let mut conn = deps.db.get().await?;
    let purged = sessions::purge_expired(&mut conn, Utc::now()).await?;
    scheduled_job_runs::record(
        &mut conn,
        NewScheduledJobRun {
            job: JOB_NAME,
            scheduled_for: job.scheduled_for,
            worker: worker.name(),
            affected_rows: purged as i64,
        },
    )
    .await?;
    tracing::info!(job = JOB_NAME, purged, scheduled_for = %job.scheduled_for, "sessions purged");
    Ok(())
}
