//! `scheduled_job_runs`: the record of every scheduled maintenance job executed.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::scheduled_job_runs;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = scheduled_job_runs)]
pub struct ScheduledJobRun {
    pub id: i64,
    pub job: String,
    pub scheduled_for: DateTime<Utc>,
    pub worker: String,
    pub affected_rows: i64,
    pub finished_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = scheduled_job_runs)]
pub struct NewScheduledJobRun<'a> {
    pub job: &'a str,
    pub scheduled_for: DateTime<Utc>,
    pub worker: &'a str,
    pub affected_rows: i64,
}

pub async fn record(conn: &mut AsyncPgConnection, run: NewScheduledJobRun<'_>) -> QueryResult<()> {
    diesel::insert_into(scheduled_job_runs::table)
        .values(&run)
        .execute(conn)
        .await
        .map(|_| ())
}

/// The runs of one job, oldest tick first.
pub async fn list_for_job(
    conn: &mut AsyncPgConnection,
    job: &str,
) -> QueryResult<Vec<ScheduledJobRun>> {
    scheduled_job_runs::table
        .filter(scheduled_job_runs::job.eq(job))
        .order((
            scheduled_job_runs::scheduled_for.asc(),
            scheduled_job_runs::id.asc(),
        ))
        .select(ScheduledJobRun::as_select())
        .load(conn)
        .await
}
