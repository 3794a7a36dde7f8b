//! Runs every schedule of this process, each as an apalis-cron worker.

use std::str::FromStr;

use boxoffice_workers::supervisor::supervise;
use cron::Schedule;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use crate::purge_sessions;

/// Cron expressions (with seconds) for each schedule, and where to enqueue.
#[derive(Clone)]
pub struct ScheduleSetup {
    pub redis: ConnectionManager,
    pub prefix: String,
    pub process: String,
    pub purge_sessions: String,
}

/// Runs every schedule until `shutdown`.
pub async fn run_all(setup: ScheduleSetup, shutdown: CancellationToken) -> anyhow::Result<()> {
    let purge_schedule = Schedule::from_str(&setup.purge_sessions)?;
    let purge = {
        let setup = setup.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let role = "schedule-purge_sessions";
            supervise(&setup.process.clone(), role, shutdown.clone(), |name| {
                purge_sessions::run(name, purge_schedule.clone(), setup.clone(), shutdown.clone())
            })
            .await
        })
    };
    let _ = purge.await;
    Ok(())
}
