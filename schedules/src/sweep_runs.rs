//! Wake overdue runs, re-drive stalled ones (the engine's backstop).

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use boxoffice_workers::jobs::sweep_runs::{JOB_NAME, SweepRuns};
use boxoffice_workers::registry::sweep_runs_storage;
use chrono::{DateTime, Utc};
use cron::Schedule;
use tokio_util::sync::CancellationToken;

use crate::runner::ScheduleSetup;

pub(crate) async fn run(
    name: String,
    schedule: Schedule,
    setup: ScheduleSetup,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let worker = WorkerBuilder::new(name)
        .backend(CronScheduler::new(schedule))
        .data(setup)
        .build(enqueue);
    worker
        .run_until(async move {
            shutdown.cancelled().await;
            Ok::<(), std::io::Error>(())
        })
        .await
}

/// The tick handler: enqueue once per tick, whichever process fires first.
async fn enqueue(tick: Tick, setup: Data<ScheduleSetup>) -> Result<(), BoxDynError> {
    let timestamp = tick.get_timestamp();
    let scheduled_for = DateTime::<Utc>::from_timestamp(timestamp as i64, 0).unwrap_or_else(Utc::now);
    let mut storage = sweep_runs_storage(setup.redis.clone(), &setup.prefix);
    let task = TaskBuilder::new(SweepRuns { scheduled_for })
        .idempotency_key(format!("{JOB_NAME}:{timestamp}"))
        .build();
    storage.push_task(task).await?;
    Ok(())
}
