//! Every job kind this process runs, in one list.

use apalis::prelude::*;
use apalis_redis::RedisStorage;
use redis::aio::ConnectionManager;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use boxoffice_models::DbPool;

use crate::deps::JobDeps;
use crate::jobs::cleanup::{self, Cleanup};
use crate::jobs::plan_reminders::{self, PlanReminders};
use crate::jobs::purge_sessions::{self, PurgeSessions};
use crate::jobs::send_email::{self, SendEmail};
use crate::jobs::sweep_runs::{self, SweepRuns};
use crate::jobs::{advance_run, run_effect};
use crate::queue;
use crate::relay::Relay;
use crate::supervisor::supervise;
use crate::wake::WorkerWake;

/// What the workers of one process share.
#[derive(Clone)]
pub struct WorkerSetup {
    pub deps: JobDeps,
    /// The outbox relay's pool, apart from the jobs' (`deps.db`): jobs
    /// waiting on a row lock can hold every job connection, and the relay
    /// must still move the messages that let them finish.
    pub relay_db: DbPool,
    pub redis: ConnectionManager,
    /// Prefix of every queue name (the deployment's Redis prefix).
    pub prefix: String,
    /// This process's name in worker names: host and pid.
    pub process: String,
}

/// Every queue the relay feeds.
pub const QUEUES: &[&str] = &[
    advance_run::JOB_NAME,
    run_effect::JOB_NAME,
    purge_sessions::JOB_NAME,
    sweep_runs::JOB_NAME,
    send_email::JOB_NAME,
    plan_reminders::JOB_NAME,
    cleanup::JOB_NAME,
];

/// Spawns a supervised worker for one job kind: `$args` from the queue `$name`,
/// handled by `$handler`, `$concurrency` at a time.
macro_rules! spawn_worker {
    ($set:expr, $setup:expr, $wake:expr, $shutdown:expr, $name:expr, $args:ty, $handler:path, $concurrency:expr) => {{
        let setup = $setup.clone();
        let wake = $wake.clone();
        let shutdown = $shutdown.clone();
        $set.spawn(async move {
            let stop = shutdown.clone();
            supervise(&setup.process.clone(), $name, shutdown, |worker_name| {
                let storage = RedisStorage::<$args, _>::new(setup.redis.clone())
                    .with_config(queue::config_with_batch(&setup.prefix, $name, $concurrency));
                let worker = WorkerBuilder::new(worker_name)
                    .backend(
                        storage.poll_with_strategy(
                            // Woken by this process's relay the moment it pushed;
                            // the interval finds what other processes pushed.
                            Strategy::new()
                                .stream(wake.subscribe($name))
                                .interval(queue::POLL_INTERVAL),
                        ),
                    )
                    .concurrency($concurrency)
                    .data(setup.deps.clone())
                    .build($handler);
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
            .await
        });
    }};
}

/// Runs every worker and the outbox relay until `shutdown`; returns when all
/// have stopped.
pub async fn run_all(setup: WorkerSetup, shutdown: CancellationToken) {
    let mut set = JoinSet::new();
    let wake = WorkerWake::default();
    spawn_worker!(
        set,
        setup,
        wake,
        shutdown,
        advance_run::JOB_NAME,
        crate::engine::messages::AdvanceRun,
        advance_run::run,
        16
    );
    spawn_worker!(
        set,
        setup,
        wake,
        shutdown,
        run_effect::JOB_NAME,
        crate::engine::messages::RunEffect,
        run_effect::run,
        16
    );
    spawn_worker!(
        set,
        setup,
        wake,
        shutdown,
        sweep_runs::JOB_NAME,
        SweepRuns,
        sweep_runs::run,
        1
    );
    spawn_worker!(
        set,
        setup,
        wake,
        shutdown,
        purge_sessions::JOB_NAME,
        PurgeSessions,
        purge_sessions::run,
        1
    );
    spawn_worker!(
        set,
        setup,
        wake,
        shutdown,
        plan_reminders::JOB_NAME,
        PlanReminders,
        plan_reminders::run,
        1
    );
    spawn_worker!(
        set,
        setup,
        wake,
        shutdown,
        cleanup::JOB_NAME,
        Cleanup,
        cleanup::run,
        1
    );
    // Each send holds a pooled connection for the SMTP conversation: a few at a time.
    spawn_worker!(
        set,
        setup,
        wake,
        shutdown,
        send_email::JOB_NAME,
        SendEmail,
        send_email::run,
        4
    );

    let relay = Relay {
        db: setup.relay_db.clone(),
        redis: setup.redis.clone(),
        prefix: setup.prefix.clone(),
        queues: QUEUES.to_vec(),
        nudge: setup.deps.relay_nudge.clone(),
        wake,
    };
    set.spawn(crate::outbox_listener::nudge_on_commit(
        setup.relay_db.clone(),
        setup.deps.relay_nudge.clone(),
        shutdown.clone(),
    ));
    set.spawn(relay.run(shutdown.clone()));
    set.spawn(crate::operator::breakers::publish(
        setup.redis.clone(),
        setup.prefix.clone(),
        setup.process.clone(),
        shutdown.clone(),
    ));
    while set.join_next().await.is_some() {}
}
