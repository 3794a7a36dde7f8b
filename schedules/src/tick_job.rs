//! A schedule's tick enqueues one job, once per tick across all processes.

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use apalis_redis::RedisStorage;
use boxoffice_workers::jobs::cleanup::{self, Cleanup};
use boxoffice_workers::jobs::plan_reminders::{self, PlanReminders};
use boxoffice_workers::jobs::purge_sessions::{self, PurgeSessions};
use boxoffice_workers::jobs::sweep_runs::{self, SweepRuns};
use boxoffice_workers::queue;
use chrono::{DateTime, Utc};
use cron::Schedule;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::runner::ScheduleSetup;

/// A job that a schedule enqueues on each tick.
pub(crate) trait TickJob:
    Serialize + DeserializeOwned + Send + Sync + Unpin + 'static
{
    const JOB_NAME: &'static str;
    fn for_tick(scheduled_for: DateTime<Utc>, setup: &ScheduleSetup) -> Self;
}

impl TickJob for PurgeSessions {
    const JOB_NAME: &'static str = purge_sessions::JOB_NAME;
    fn for_tick(scheduled_for: DateTime<Utc>, _setup: &ScheduleSetup) -> Self {
        PurgeSessions { scheduled_for }
    }
}

impl TickJob for SweepRuns {
    const JOB_NAME: &'static str = sweep_runs::JOB_NAME;
    fn for_tick(scheduled_for: DateTime<Utc>, _setup: &ScheduleSetup) -> Self {
        SweepRuns { scheduled_for }
    }
}

impl TickJob for PlanReminders {
    const JOB_NAME: &'static str = plan_reminders::JOB_NAME;
    fn for_tick(scheduled_for: DateTime<Utc>, _setup: &ScheduleSetup) -> Self {
        PlanReminders { scheduled_for }
    }
}

/// The retention settings travel with each tick's job.
impl TickJob for Cleanup {
    const JOB_NAME: &'static str = cleanup::JOB_NAME;
    fn for_tick(scheduled_for: DateTime<Utc>, setup: &ScheduleSetup) -> Self {
        Cleanup {
            scheduled_for,
            retention: setup.retention,
        }
    }
}

/// Runs the cron timer for `J` until `shutdown`.
pub(crate) async fn run<J: TickJob>(
    name: String,
    schedule: Schedule,
    setup: ScheduleSetup,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let worker = WorkerBuilder::new(name)
        .backend(CronScheduler::new(schedule))
        .data(setup)
        .build(enqueue::<J>);
    worker
        .run_until(async move {
            shutdown.cancelled().await;
            Ok::<(), std::io::Error>(())
        })
        .await
}

/// The tick handler: the idempotency key lets the queue accept the job once,
/// whichever process fires first.
async fn enqueue<J: TickJob>(tick: Tick, setup: Data<ScheduleSetup>) -> Result<(), BoxDynError> {
    let timestamp = tick.get_timestamp();
    let scheduled_for =
        DateTime::<Utc>::from_timestamp(timestamp as i64, 0).unwrap_or_else(Utc::now);
    let mut storage = RedisStorage::<J, _>::new(setup.redis.clone())
        .with_config(queue::config(&setup.prefix, J::JOB_NAME));
    let task = TaskBuilder::new(J::for_tick(scheduled_for, &setup))
        .idempotency_key(format!("{}:{timestamp}", J::JOB_NAME))
        .build();
    storage.push_task(task).await?;
    Ok(())
}
