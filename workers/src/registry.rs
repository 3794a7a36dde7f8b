//! Every job kind this process runs, in one list.

use apalis::prelude::*;
use apalis_redis::RedisStorage;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use crate::deps::JobDeps;
use crate::jobs::purge_sessions::{self, PurgeSessions};
use crate::queue;
use crate::supervisor::supervise;

/// What the workers of one process share.
#[derive(Clone)]
pub struct WorkerSetup {
    pub deps: JobDeps,
    pub redis: ConnectionManager,
    /// Prefix of every queue name (the deployment's Redis prefix).
    pub prefix: String,
    /// This process's name in worker names: host and pid.
    pub process: String,
}

/// Runs every worker until `shutdown`; returns when all have stopped.
pub async fn run_all(setup: WorkerSetup, shutdown: CancellationToken) {
    let purge = tokio::spawn(run_purge_sessions(setup.clone(), shutdown.clone()));
    let _ = purge.await;
}

async fn run_purge_sessions(setup: WorkerSetup, shutdown: CancellationToken) {
    let stop = shutdown.clone();
    supervise(&setup.process, purge_sessions::JOB_NAME, shutdown, |name| {
        let storage = RedisStorage::<PurgeSessions, _>::new(setup.redis.clone())
            .with_config(queue::config(&setup.prefix, purge_sessions::JOB_NAME));
        let worker = WorkerBuilder::new(name)
            .backend(storage.poll_with_interval(queue::POLL_INTERVAL))
            .data(setup.deps.clone())
            .build(purge_sessions::run);
        let stop = stop.clone();
        async move {
            worker
                .run_until(async move {
                    stop.cancelled().await;
                    Ok::<(), std::io::Error>(())
                })
                .await
        }
    })
    .await;
}

/// A producer for the purge queue (used by the schedule).
pub fn purge_sessions_storage(redis: ConnectionManager, prefix: &str) -> RedisStorage<PurgeSessions, ConnectionManager> {
    RedisStorage::new(redis).with_config(queue::config(prefix, purge_sessions::JOB_NAME))
}
