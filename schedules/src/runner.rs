//! Runs every schedule of this process, each as an apalis-cron worker.

use std::str::FromStr;

use boxoffice_workers::supervisor::supervise;
use cron::Schedule;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use boxoffice_workers::jobs::cleanup::{Cleanup, Retention};
use boxoffice_workers::jobs::plan_reminders::PlanReminders;
use boxoffice_workers::jobs::purge_sessions::PurgeSessions;
use boxoffice_workers::jobs::sweep_runs::SweepRuns;

use crate::tick_job::{self, TickJob};

/// Cron expressions (with seconds) for each schedule, and where to enqueue.
#[derive(Clone)]
pub struct ScheduleSetup {
    pub redis: ConnectionManager,
    pub prefix: String,
    pub process: String,
    pub purge_sessions: String,
    pub sweep_runs: String,
    pub plan_reminders: String,
    pub cleanup: String,
    pub retention: Retention,
}

/// Runs every schedule until `shutdown`.
pub async fn run_all(setup: ScheduleSetup, shutdown: CancellationToken) -> anyhow::Result<()> {
    let purge = Schedule::from_str(&setup.purge_sessions)?;
    let sweep = Schedule::from_str(&setup.sweep_runs)?;
    let plan = Schedule::from_str(&setup.plan_reminders)?;
    let cleanup = Schedule::from_str(&setup.cleanup)?;
    let mut set = tokio::task::JoinSet::new();
    spawn::<PurgeSessions>(&mut set, purge, &setup, &shutdown);
    spawn::<SweepRuns>(&mut set, sweep, &setup, &shutdown);
    spawn::<PlanReminders>(&mut set, plan, &setup, &shutdown);
    spawn::<Cleanup>(&mut set, cleanup, &setup, &shutdown);
    while set.join_next().await.is_some() {}
    Ok(())
}

/// One supervised cron timer for `J`.
fn spawn<J: TickJob>(
    set: &mut tokio::task::JoinSet<()>,
    schedule: Schedule,
    setup: &ScheduleSetup,
    shutdown: &CancellationToken,
) {
    let (setup, shutdown) = (setup.clone(), shutdown.clone());
    set.spawn(async move {
        supervise(
            &setup.process.clone(),
            &format!("schedule-{}", J::JOB_NAME),
            shutdown.clone(),
            |name| tick_job::run::<J>(name, schedule.clone(), setup.clone(), shutdown.clone()),
        )
        .await
    });
}
