//! Deletes what Boxoffice no longer needs, by the retention settings:
//! - the step history, signals and stale timer messages of runs finished
//!   more than `run_history_days` ago (the runs themselves stay: bookings,
//!   tickets and refunds point at them);
//! - webhook event ids (signals keyed `stripe:…`) older than
//!   `webhook_days`, never less than the provider's retry window (7 days):
//!   a retried webhook must still be recognised;
//! - the bodies of emails sent more than `email_body_days` ago (the row
//!   stays, for the participant's list, with its subject);
//! - audit rows older than `audit_days`, only when that is set;
//! - and it moves analytics slots past for an hour from their live counter
//!   shards into the sales history (`analytics_history`: no figure changes,
//!   an event's reads get shorter).
//!
//! (Expired sessions are `purge_sessions`' job.)
//!
//! Every statement deletes at most [`BATCH`] rows chosen by primary key and
//! commits on its own, so no statement holds locks for long and the rows a
//! checkout writes (runs in flight, their steps) are never among them. The
//! schedule's tick key runs it once per tick across processes; an advisory
//! lock keeps two ticks from overlapping when one runs long. What it removed
//! goes to `scheduled_job_runs`, the log and the `cleanup_rows_total` metric.

use apalis::prelude::{BoxDynError, Data, WorkerContext};
use boxoffice_models::analytics_history;
use boxoffice_models::scheduled_job_runs::{self, NewScheduledJobRun};
use chrono::{DateTime, Duration, Utc};
use diesel::sql_types::{BigInt, Bool, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use crate::deps::JobDeps;

pub const JOB_NAME: &str = "cleanup";

/// Rows per statement.
pub const BATCH: i64 = 5_000;

/// The provider retries a webhook for up to three days; its ids are kept at
/// least a week whatever the setting.
pub const MIN_WEBHOOK_DAYS: u32 = 7;

/// Key of the advisory lock that keeps two cleanups from overlapping.
const LOCK_KEY: i64 = 0x0b0c_1ea0;

/// How long each kind of data is kept, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub run_history_days: u32,
    pub webhook_days: u32,
    pub email_body_days: u32,
    /// `None`: audit rows are kept for ever.
    pub audit_days: Option<u32>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            run_history_days: 30,
            webhook_days: 30,
            email_body_days: 90,
            audit_days: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cleanup {
    /// The schedule tick this run belongs to.
    pub scheduled_for: DateTime<Utc>,
    pub retention: Retention,
}

/// Rows removed (or, for email bodies, blanked), per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub steps: u64,
    pub signals: u64,
    pub timers: u64,
    pub webhooks: u64,
    pub email_bodies: u64,
    pub audit: u64,
    /// Analytics slots moved into the sales history.
    pub analytics_slots: u64,
}

impl Removed {
    pub fn total(&self) -> u64 {
        self.steps
            + self.signals
            + self.timers
            + self.webhooks
            + self.email_bodies
            + self.audit
            + self.analytics_slots
    }
}

/// A slot is moved once it has been over this long: its sales committed
/// long ago, so the move never competes with them for its rows.
const MOVE_AFTER: Duration = Duration::hours(1);

fn days_ago(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now - Duration::days(i64::from(days))
}

/// Runs one statement of at most [`BATCH`] rows until it affects fewer.
async fn in_batches(
    conn: &mut AsyncPgConnection,
    what: &'static str,
    sql: &str,
    cutoff: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = diesel::sql_query(sql)
            .bind::<Timestamptz, _>(cutoff)
            .bind::<BigInt, _>(BATCH)
            .execute(conn)
            .await? as u64;
        total += n;
        metrics::counter!("cleanup_rows_total", "what" => what).increment(n);
        if n < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Finished: ended for good (a `failed` run may still be retried by an operator).
const OLD_RUNS: &str = "SELECT id FROM workflow_runs \
     WHERE finished_at < $1 AND status IN ('completed', 'compensated', 'cancelled')";

/// Deletes what `retention` no longer keeps, as of `now`.
pub async fn clean(
    conn: &mut AsyncPgConnection,
    retention: &Retention,
    now: DateTime<Utc>,
) -> anyhow::Result<Removed> {
    let runs_cutoff = days_ago(now, retention.run_history_days);
    let steps = in_batches(
        conn,
        "steps",
        &format!(
            "DELETE FROM workflow_steps WHERE id IN ( \
               SELECT s.id FROM workflow_steps s WHERE s.run_id IN ({OLD_RUNS}) LIMIT $2)"
        ),
        runs_cutoff,
    )
    .await?;
    let signals = in_batches(
        conn,
        "signals",
        &format!(
            "DELETE FROM workflow_signals WHERE id IN ( \
               SELECT g.id FROM workflow_signals g WHERE g.run_id IN ({OLD_RUNS}) LIMIT $2)"
        ),
        runs_cutoff,
    )
    .await?;
    // A finished run's timer still waiting in the outbox would only be ignored.
    let timers = in_batches(
        conn,
        "timers",
        &format!(
            "DELETE FROM outbox WHERE id IN ( \
               SELECT o.id FROM outbox o WHERE o.queue = 'advance_run' \
                  AND (o.payload->>'run_id')::uuid IN ({OLD_RUNS}) LIMIT $2)"
        ),
        runs_cutoff,
    )
    .await?;
    let webhooks = in_batches(
        conn,
        "webhooks",
        "DELETE FROM workflow_signals WHERE id IN ( \
           SELECT id FROM workflow_signals \
            WHERE received_at < $1 AND consumed_at IS NOT NULL AND dedupe_key LIKE 'stripe:%' \
            LIMIT $2)",
        days_ago(now, retention.webhook_days.max(MIN_WEBHOOK_DAYS)),
    )
    .await?;
    let email_bodies = in_batches(
        conn,
        "email_bodies",
        "UPDATE notifications SET body_text = '' WHERE id IN ( \
           SELECT id FROM notifications \
            WHERE status = 'sent' AND sent_at < $1 AND body_text <> '' LIMIT $2)",
        days_ago(now, retention.email_body_days),
    )
    .await?;
    let audit = match retention.audit_days {
        Some(days) => {
            in_batches(
                conn,
                "audit",
                "DELETE FROM audit_log WHERE id IN ( \
                   SELECT id FROM audit_log WHERE created_at < $1 LIMIT $2)",
                days_ago(now, days),
            )
            .await?
        }
        None => 0,
    };
    let analytics_slots = analytics_history::move_past(conn, now - MOVE_AFTER).await?;
    metrics::counter!("cleanup_rows_total", "what" => "analytics_slots").increment(analytics_slots);
    Ok(Removed {
        steps,
        signals,
        timers,
        webhooks,
        email_bodies,
        audit,
        analytics_slots,
    })
}

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

pub async fn run(
    job: Cleanup,
    deps: Data<JobDeps>,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    let mut conn = deps.db.get().await?;
    let locked: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<BigInt, _>(LOCK_KEY)
        .get_result(&mut conn)
        .await?;
    let removed = if locked.locked {
        let result = clean(&mut conn, &job.retention, Utc::now()).await;
        diesel::sql_query("SELECT pg_advisory_unlock($1)")
            .bind::<BigInt, _>(LOCK_KEY)
            .execute(&mut conn)
            .await?;
        result?
    } else {
        tracing::info!(
            job = JOB_NAME,
            "another cleanup is still running; this tick does nothing"
        );
        Removed::default()
    };
    scheduled_job_runs::record(
        &mut conn,
        NewScheduledJobRun {
            job: JOB_NAME,
            scheduled_for: job.scheduled_for,
            worker: worker.name(),
            affected_rows: removed.total() as i64,
        },
    )
    .await?;
    tracing::info!(
        job = JOB_NAME,
        scheduled_for = %job.scheduled_for,
        steps = removed.steps,
        signals = removed.signals,
        timers = removed.timers,
        webhooks = removed.webhooks,
        email_bodies = removed.email_bodies,
        audit = removed.audit,
        analytics_slots = removed.analytics_slots,
        "cleanup done"
    );
    Ok(())
}
