//! Waiting for what the system does on its own time (workers, the relay,
//! webhooks, the SMTP server): a check polled until it holds, and the test
//! failed, naming what it waited for, when it does not within a bound.

use std::time::Duration;

/// How often a check is polled.
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it gives a value, and returns it; fails the test
/// after `within`, naming `what`.
pub async fn value<T>(
    within: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` until it holds; fails the test after `within`, naming
/// `what`.
pub async fn until(within: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    value(within, what, async || check().await.then_some(())).await
}
