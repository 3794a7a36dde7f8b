//! Optional Redis calls on request paths (cache, rate limits): each call is
//! bounded in time, and after a failure the caller's calls are skipped for a
//! moment, so a dead Redis costs one timeout and not one per request.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::ApiConfig;

pub struct RedisGuard {
    /// Names the caller in logs (`cache`, `rate_limit`).
    purpose: &'static str,
    timeout: Duration,
    skip_after_failure: Duration,
    /// Keyed by Redis prefix: each deployment (and each test app) has its own.
    skip_until: Mutex<HashMap<String, Instant>>,
}

impl RedisGuard {
    pub fn new(purpose: &'static str, timeout: Duration, skip_after_failure: Duration) -> Self {
        RedisGuard {
            purpose,
            timeout,
            skip_after_failure,
            skip_until: Mutex::new(HashMap::new()),
        }
    }

    /// Whether calls are being skipped after a recent failure.
    pub fn skipping(&self, config: &ApiConfig) -> bool {
        let mut map = self.skip_until.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&config.redis_prefix) {
            Some(until) if Instant::now() < *until => true,
            Some(_) => {
                map.remove(&config.redis_prefix);
                false
            }
            None => false,
        }
    }

    fn record_failure(&self, config: &ApiConfig) {
        let mut map = self.skip_until.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(
            config.redis_prefix.clone(),
            Instant::now() + self.skip_after_failure,
        );
    }

    /// Runs `call` unless skipping; `None` (logged once here) on skip, error or timeout.
    pub async fn call<T>(
        &self,
        config: &ApiConfig,
        what: &'static str,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        if self.skipping(config) {
            return None;
        }
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(err)) => {
                tracing::warn!(redis.purpose = self.purpose, redis.op = what, error = %err, "redis call failed; going on without it");
                self.record_failure(config);
                None
            }
            Err(_) => {
                tracing::warn!(
                    redis.purpose = self.purpose,
                    redis.op = what,
                    "redis call timed out; going on without it"
                );
                self.record_failure(config);
                None
            }
        }
    }
}
