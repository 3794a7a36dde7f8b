//! `workflow_steps`: the history of every transition and step attempt of a run.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::prepared::KeepPrepared;
use crate::schema::workflow_steps;

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = workflow_steps, check_for_backend(diesel::pg::Pg))]
pub struct StepRecord {
    pub id: i64,
    pub run_id: Uuid,
    pub step: String,
    pub attempt: i32,
    pub input: String,
    pub outcome: String,
    pub error: Option<String>,
    pub version: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

// `error: None` is bound as NULL (the column's default), so that an insert of
// n records has one text: it is kept prepared (`crate::prepared`).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = workflow_steps, treat_none_as_default_value = false)]
pub struct NewStepRecord {
    pub run_id: Uuid,
    pub step: String,
    pub attempt: i32,
    pub input: String,
    /// advanced | retrying | failed | compensating | ignored
    pub outcome: String,
    pub error: Option<String>,
    pub version: i32,
    pub started_at: DateTime<Utc>,
}

pub async fn record(conn: &mut AsyncPgConnection, rec: &NewStepRecord) -> QueryResult<()> {
    diesel::insert_into(workflow_steps::table)
        .values(rec)
        .keep_prepared()
        .execute(conn)
        .await
        .map(|_| ())
}

/// Records several steps in one statement, in order (ids follow the list).
/// Takes a shared connection: a step's writes go out together (diesel-async
/// pipelines the statements of one connection that are awaited at once).
pub async fn record_all(mut conn: &AsyncPgConnection, recs: &[NewStepRecord]) -> QueryResult<()> {
    if recs.is_empty() {
        return Ok(());
    }
    diesel::insert_into(workflow_steps::table)
        .values(recs)
        .keep_prepared()
        .execute(&mut conn)
        .await
        .map(|_| ())
}

pub async fn list_for_run(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
) -> QueryResult<Vec<StepRecord>> {
    workflow_steps::table
        .filter(workflow_steps::run_id.eq(run_id))
        .order(workflow_steps::id.asc())
        .select(StepRecord::as_select())
        .load(conn)
        .await
}
