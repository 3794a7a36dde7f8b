//! Queue names and the apalis-redis settings every queue shares.

use std::time::Duration;

use apalis_redis::Config;

/// How often an idle worker looks for work. apalis-redis otherwise waits for its
/// heartbeat (30 s) before noticing a new job.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A worker that misses heartbeats for `HEARTBEAT × MISSED_HEARTBEATS` is taken
/// for dead and its jobs are handed to another worker. The window must be well
/// above the longest job, or a slow but live worker's jobs would run twice.
const HEARTBEAT: Duration = Duration::from_secs(2);
const MISSED_HEARTBEATS: usize = 10;

/// Idempotency keys (used by schedules: one job per tick) are kept this long.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// The full Redis name of a queue: the deployment's prefix and the job's name.
fn queue_name(prefix: &str, job: &str) -> String {
    format!("{prefix}:queue:{job}")
}

pub fn config(prefix: &str, job: &str) -> Config {
    config_with_batch(prefix, job, 1)
}

/// `batch` jobs fetched at once; keep it at most the worker's concurrency: a
/// worker holding fetched-but-unstarted jobs sends no heartbeat, and those jobs
/// could be taken over by another worker and run twice.
pub fn config_with_batch(prefix: &str, job: &str, batch: usize) -> Config {
    Config::default()
        .queue(queue_name(prefix, job))
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(MISSED_HEARTBEATS)
        .batch_size(batch.max(1))
        .idempotency_ttl(Some(IDEMPOTENCY_TTL))
}
