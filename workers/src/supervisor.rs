//! Keeps a worker running: restarts it with backoff when it stops, under a new
//! name each time (apalis-redis refuses a name that was alive within its orphan
//! window), until shutdown.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A worker that ran this long before failing is considered healthy again.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// Runs `start(worker_name)` until `shutdown` is cancelled, restarting on exit.
/// Worker names are `{process}-{role}-r{restart}`.
pub async fn supervise<F, Fut, E>(
    process: &str,
    role: &str,
    shutdown: CancellationToken,
    mut start: F,
) where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut restart = 0usize;
    let mut backoff = FIRST_BACKOFF;
    while !shutdown.is_cancelled() {
        let name = format!("{process}-{role}-r{restart}");
        let started = Instant::now();
        tracing::info!(worker.name = %name, "worker starting");
        match start(name.clone()).await {
            Ok(()) if shutdown.is_cancelled() => break,
            Ok(()) => tracing::warn!(worker.name = %name, "worker stopped unexpectedly"),
            Err(e) => tracing::error!(worker.name = %name, error = %e, "worker failed"),
        }
        if started.elapsed() > HEALTHY_AFTER {
            backoff = FIRST_BACKOFF;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        restart += 1;
    }
    tracing::info!(worker.role = role, "worker stopped");
}
