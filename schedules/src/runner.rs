//! Runs every schedule of this process, each as an apalis-cron worker.

use std::str::FromStr;

use boxoffice_workers::supervisor::supervise;
use cron::Schedule;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use boxoffice_workers::jobs::purge_sessions::PurgeSessions;
use boxoffice_workers::jobs::sweep_runs::SweepRuns;

use crate::tick_job;

/// Cron expressions (with seconds) for each schedule, and where to enqueue.
#[derive(Clone)]
pub struct ScheduleSetup {
    pub redis: ConnectionManager,
    pub prefix: String,
    pub process: String,
    pub purge_sessions: String,
    pub sweep_runs: String,
}

/// Runs every schedule until `shutdown`.
pub async fn run_all(setup: ScheduleSetup, shutdown: CancellationToken) -> anyhow::Result<()> {
    let purge = Schedule::from_str(&setup.purge_sessions)?;
    let sweep = Schedule::from_str(&setup.sweep_runs)?;
    let mut set = tokio::task::JoinSet::new();
    {
        let (setup, shutdown) = (setup.clone(), shutdown.clone());
        set.spawn(async move {
            supervise(
                &setup.process.clone(),
                "schedule-purge_sessions",
                shutdown.clone(),
                |name| {
                    tick_job::run::<PurgeSessions>(
                        name,
                        purge.clone(),
                        setup.clone(),
                        shutdown.clone(),
                    )
                },
            )
            .await
        });
    }
    {
        let (setup, shutdown) = (setup.clone(), shutdown.clone());
        set.spawn(async move {
            supervise(
                &setup.process.clone(),
                "schedule-sweep_runs",
                shutdown.clone(),
                |name| {
                    tick_job::run::<SweepRuns>(name, sweep.clone(), setup.clone(), shutdown.clone())
                },
            )
            .await
        });
    }
    while set.join_next().await.is_some() {}
    Ok(())
}
