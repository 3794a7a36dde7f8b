//! The outbox relay: moves committed messages from Postgres into the apalis
//! queues in Redis, keeping every queue at most `MAX_QUEUE_DEPTH` deep.
//!
//! apalis-redis moves all due jobs in one Lua call that fails above ~8,000 and
//! takes the workers down with it; so the backlog stays in Postgres and Redis
//! only ever holds a bounded window of it. Several relays (one per `work`
//! process) share the work through `FOR UPDATE SKIP LOCKED`.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::TaskSink;
use apalis_redis::RedisStorage;
use boxoffice_models::{DbPool, outbox};
use chrono::Utc;
use diesel_async::AsyncConnection;
use redis::aio::ConnectionManager;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::queue;
use crate::wake::WorkerWake;

/// The most jobs one queue holds in Redis (ready + delayed).
pub const MAX_QUEUE_DEPTH: usize = 1_000;
/// The most messages moved in one transaction.
const CHUNK: usize = 500;
/// How often an idle relay looks anyway: for messages that came due since
/// (timers, backstops), and for the others while the outbox listener is down
/// (it wakes the relay at every commit of a message due at once).
const IDLE_POLL: Duration = Duration::from_millis(100);
/// A pass taking longer is abandoned (its transaction rolls back) and tried
/// again: one stuck call must not stop the relay for good.
const PASS_LIMIT: Duration = Duration::from_secs(30);
/// How often the outbox gauges are refreshed.
const BACKLOG_EVERY: Duration = Duration::from_secs(1);

pub struct Relay {
    pub db: DbPool,
    pub redis: ConnectionManager,
    pub prefix: String,
    pub queues: Vec<&'static str>,
    pub nudge: Arc<Notify>,
    /// This process's idle workers, woken when their queue got jobs.
    pub wake: WorkerWake,
}

impl Relay {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backlog_measured = tokio::time::Instant::now() - BACKLOG_EVERY;
        // After a pass that moved nothing, the next looks first which queues
        // have anything due; after one that moved messages, it tries every
        // queue (while a backlog drains, most are due anyway).
        let mut idle = false;
        while !shutdown.is_cancelled() {
            if backlog_measured.elapsed() >= BACKLOG_EVERY {
                backlog_measured = tokio::time::Instant::now();
                if tokio::time::timeout(PASS_LIMIT, self.measure_backlog())
                    .await
                    .is_err()
                {
                    tracing::warn!(limit = ?PASS_LIMIT, "measuring the outbox took too long; abandoned");
                }
            }
            let pass = tokio::time::timeout(PASS_LIMIT, self.relay_pass(idle))
                .await
                .unwrap_or_else(|_| {
                    Err(anyhow::anyhow!(
                        "a relay pass took longer than {PASS_LIMIT:?}; abandoned"
                    ))
                });
            let moved = match pass {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    0
                }
            };
            idle = moved == 0;
            if idle {
                tokio::select! {
                    _ = self.nudge.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    }

    /// Sets the outbox gauges per queue: `outbox_backlog_messages` (waiting
    /// in Postgres, due or not) and `outbox_relay_lag_seconds` (how long the
    /// oldest due message has waited; it grows while Redis is full). A scan of
    /// the table, so not on every pass.
    async fn measure_backlog(&self) {
        let now = Utc::now();
        // The connection goes back to the pool before the Redis round trips
        // below: while Redis is slow or down each of them can block for
        // seconds, and a pooled connection held meanwhile is one the jobs and
        // the sweep cannot have.
        let backlog = {
            let Ok(mut conn) = self.db.get().await else {
                return;
            };
            match outbox::backlog_with_lag(&mut conn, now).await {
                Ok(backlog) => backlog,
                Err(_) => return,
            }
        };
        for queue_name in &self.queues {
            let (waiting, oldest_due) = backlog
                .iter()
                .find(|(q, _, _)| q == queue_name)
                .map_or((0, None), |(_, n, due)| (*n, *due));
            let lag = oldest_due.map_or(0.0, |due| {
                (now - due).to_std().unwrap_or_default().as_secs_f64()
            });
            metrics::gauge!("outbox_backlog_messages", "queue" => *queue_name).set(waiting as f64);
            metrics::gauge!("outbox_relay_lag_seconds", "queue" => *queue_name).set(lag);
            // Set here too: an idle relay skips the queues with nothing due.
            let config = queue::config(&self.prefix, queue_name);
            if let Ok(depth) = queue_depth(&self.redis, &config).await {
                metrics::gauge!("queue_depth", "queue" => *queue_name).set(depth as f64);
            }
        }
    }

    /// One pass over every queue; returns how many messages moved.
    pub async fn relay_once(&self) -> anyhow::Result<usize> {
        self.relay_pass(false).await
    }

    /// One pass; when `idle`, over the queues that have something due only.
    /// An idle relay looks 10 times a second: one indexed query, instead of a
    /// transaction, an advisory lock and a Redis round trip per queue.
    async fn relay_pass(&self, idle: bool) -> anyhow::Result<usize> {
        let due = if idle {
            let mut conn = self.db.get().await?;
            Some(outbox::due_queues(&mut conn, Utc::now()).await?)
        } else {
            None
        };
        let mut moved = 0;
        for queue_name in &self.queues {
            if due
                .as_ref()
                .is_some_and(|due| !due.iter().any(|q| q == queue_name))
            {
                continue;
            }
            moved += self.relay_queue(queue_name).await?;
        }
        Ok(moved)
    }

    /// Moves what fits into one queue. The depth check and the push happen under
    /// a per-queue advisory lock: relays of several processes would otherwise
    /// all see room and together overshoot the bound.
    async fn relay_queue(&self, queue_name: &'static str) -> anyhow::Result<usize> {
        let config = queue::config(&self.prefix, queue_name);
        let mut conn = self.db.get().await?;
        let redis = self.redis.clone();
        let n = conn
            .transaction::<_, anyhow::Error, _>(async |conn| {
                if !outbox::try_lock_queue(conn, config.queue.as_ref()).await? {
                    return Ok(0); // another relay is filling this queue right now
                }
                let depth = queue_depth(&redis, &config).await?;
                metrics::gauge!("queue_depth", "queue" => queue_name).set(depth as f64);
                let room = MAX_QUEUE_DEPTH.saturating_sub(depth).min(CHUNK);
                if room == 0 {
                    return Ok(0);
                }
                let due = outbox::claim_due(conn, queue_name, Utc::now(), room as i64).await?;
                if due.is_empty() {
                    return Ok(0);
                }
                let ids: Vec<i64> = due.iter().map(|m| m.id).collect();
                let payloads: Vec<serde_json::Value> = due.into_iter().map(|m| m.payload).collect();
                let count = payloads.len();
                // Pushed before the delete commits: a crash in between relays
                // the messages twice, which consumers tolerate; never zero times.
                let mut storage =
                    RedisStorage::<serde_json::Value, _>::new(redis).with_config(config.clone());
                storage
                    .push_bulk(payloads)
                    .await
                    .map_err(|e| anyhow::anyhow!("pushing to Redis: {e:?}"))?;
                outbox::delete(conn, &ids).await?;
                Ok(count)
            })
            .await?;
        if n > 0 {
            metrics::counter!("outbox_relayed_total", "queue" => queue_name).increment(n as u64);
            self.wake.wake(queue_name);
        }
        Ok(n)
    }
}

/// Jobs waiting in Redis for a queue: ready plus delayed.
pub async fn queue_depth(
    redis: &ConnectionManager,
    config: &apalis_redis::Config,
) -> anyhow::Result<usize> {
    let mut conn = redis.clone();
    let (ready, scheduled): (usize, usize) = redis::pipe()
        .cmd("LLEN")
        .arg(config.active_jobs_list())
        .cmd("ZCARD")
        .arg(config.scheduled_jobs_set())
        .query_async(&mut conn)
        .await?;
    Ok(ready + scheduled)
}
