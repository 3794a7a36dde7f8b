//! Circuit breaker states, shared across processes: each worker process keeps
//! the states of its breakers here and publishes them to Redis every few
//! seconds under `{prefix}:breakers:{process}` (a hash dependency → state, with
//! a TTL, so a dead process's report disappears).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

static STATES: Mutex<BTreeMap<String, &'static str>> = Mutex::new(BTreeMap::new());

const PUBLISH_EVERY: Duration = Duration::from_secs(2);
const TTL_SECS: u64 = 10;

/// Called by a breaker whenever it changes state (and when it is built).
pub fn record(dependency: &str, state: &'static str) {
    if let Ok(mut states) = STATES.lock() {
        states.insert(dependency.to_owned(), state);
    }
}

/// This process's breaker states, dependency → state.
pub fn snapshot() -> Vec<(String, &'static str)> {
    STATES
        .lock()
        .map(|s| s.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default()
}

pub fn key(prefix: &str, process: &str) -> String {
    format!("{prefix}:breakers:{process}")
}

/// Publishes this process's breaker states until `shutdown`.
pub async fn publish(
    redis: ConnectionManager,
    prefix: String,
    process: String,
    shutdown: CancellationToken,
) {
    let key = key(&prefix, &process);
    loop {
        let states = snapshot();
        if !states.is_empty() {
            let mut conn = redis.clone();
            let mut pipe = redis::pipe();
            pipe.cmd("DEL").arg(&key).ignore();
            pipe.cmd("HSET").arg(&key).arg(&states).ignore();
            pipe.cmd("EXPIRE").arg(&key).arg(TTL_SECS).ignore();
            if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                tracing::debug!(error = %e, "publishing breaker states failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(PUBLISH_EVERY) => {}
            _ = shutdown.cancelled() => break,
        }
    }
}
