//! Rate limits shared across API replicas through Redis, keyed under
//! [`ApiConfig::redis_key`] so every deployment (and every test) has its own
//! namespace.
//!
//! **General limits** ([`RateLimitLayer`], a layer on every route but the
//! health probes): a fixed one-minute window per client IP and per user,
//! `INCR` + `EXPIRE` in one atomic pipeline → 429 `rate_limited`. Failed
//! logins have limits of their own ([`crate::login_lockout`]), through the
//! same guarded Redis calls ([`guarded`]).
//!
//! Redis being slow or down must not take the API down: every call has a short
//! timeout, a failure is logged and the request is let through (fail open), and
//! after a failure Redis is skipped for a few seconds so requests do not each
//! wait for the timeout.

use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use pin_project_lite::pin_project;
use redis::aio::ConnectionManager;
use tower::{Layer, Service};
use uuid::Uuid;

use crate::client_ip::{client_ip, ip_bucket};
use crate::config::ApiConfig;
use crate::error::AppError;
use crate::redis_guard::RedisGuard;
use crate::state::AppState;

/// How long one Redis call may take before the limit is skipped.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// After a Redis failure, limits are skipped this long without trying Redis.
const BREAKER_OPEN: Duration = Duration::from_secs(5);
const WINDOW_SECS: u64 = 60;

// ---------------------------------------------------------------- Redis calls

/// Per-prefix breaker: the deployment's (or the test's) Redis is skipped until
/// the instant stored here. Keyed by prefix so one test's outage does not
/// switch off the limits of another test in the same process.
/// Rate limits fail open: while Redis misbehaves, requests are served unthrottled.
static REDIS: LazyLock<RedisGuard> =
    LazyLock::new(|| RedisGuard::new("rate_limit", REDIS_TIMEOUT, BREAKER_OPEN));

/// `call` within the Redis timeout, or `None` (logged) when Redis fails or
/// is being skipped after a failure.
pub(crate) async fn guarded<T, F>(state: &AppState, what: &'static str, call: F) -> Option<T>
where
    F: Future<Output = redis::RedisResult<T>>,
{
    REDIS.call(&state.config, what, call).await
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- general limits

pub fn ip_window_key(config: &ApiConfig, ip: IpAddr, window: u64) -> String {
    config.redis_key(&format!("rl:ip:{}:{window}", ip_bucket(ip)))
}

pub fn user_window_key(config: &ApiConfig, user_id: Uuid, window: u64) -> String {
    config.redis_key(&format!("rl:user:{user_id}:{window}"))
}

/// Routes polled by load balancers and monitoring, which share one address and
/// must never be turned away.
/// Probes, and the payment provider's webhooks: those are authenticated by
/// their signature, and throttling them would only make the provider retry.
pub(crate) fn exempt(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/readyz" | "/metrics" | "/v1/webhooks/stripe"
    )
}

/// The layer of the general limits: counts each request against its IP and
/// (when it carries a valid access token) its user, and answers 429
/// `rate_limited` over either limit.
///
/// The user is taken from the token's signature-checked `sub` without a
/// database lookup: a revoked session still counts against its user, which is
/// what a limit wants.
#[derive(Clone)]
pub struct RateLimitLayer {
    config: Arc<ApiConfig>,
    redis: ConnectionManager,
}

impl RateLimitLayer {
    pub fn new(state: &AppState) -> Self {
        RateLimitLayer {
            config: state.config.clone(),
            redis: state.redis.clone(),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            limits: self.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct RateLimit<S> {
    limits: RateLimitLayer,
    inner: S,
}

impl<S> Service<Request> for RateLimit<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Limited<S, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Some(counts) = Counts::of(&self.limits.config, &request) else {
            return Limited::serving(self.inner.call(request));
        };
        // The service polled ready is the one to call, after the count.
        let fresh = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, fresh);
        let RateLimitLayer { config, redis } = self.limits.clone();
        // Boxed, and freed once counted: while the routes below serve the
        // request (most of its life), it keeps neither the commands nor the
        // Redis call's state.
        let count = Box::pin(counts.over_limit(config, redis));
        Limited {
            stage: Stage::Counting {
                count,
                inner,
                request: Some(request),
            },
        }
    }
}

pin_project! {
    /// A request being counted, then served. Written out rather than an
    /// `async` block: a block keeps its captures (the service below, the
    /// request) beside the routes' future for the request's whole life, and
    /// this keeps one or the other; and it is not boxed, but held inline by
    /// the layers above (README, "Smaller futures, fewer pages").
    pub struct Limited<S, F> {
        #[pin]
        stage: Stage<S, F>,
    }
}

pin_project! {
    #[project = StageProj]
    enum Stage<S, F> {
        Counting {
            count: BoxFuture<'static, Option<u64>>,
            inner: S,
            request: Option<Request>,
        },
        Serving {
            #[pin]
            answer: F,
        },
    }
}

impl<S, F> Limited<S, F> {
    fn serving(answer: F) -> Self {
        Limited {
            stage: Stage::Serving { answer },
        }
    }
}

impl<S> Future for Limited<S, S::Future>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut stage = self.project().stage;
        loop {
            let answer = match stage.as_mut().project() {
                StageProj::Serving { answer } => return answer.poll(cx),
                StageProj::Counting {
                    count,
                    inner,
                    request,
                } => {
                    if let Some(retry_after) = ready!(count.as_mut().poll(cx)) {
                        let limited = AppError::too_many_requests("rate_limited", retry_after);
                        return Poll::Ready(Ok(limited.into_response()));
                    }
                    let request = request.take().expect("a counted request is served once");
                    inner.call(request)
                }
            };
            stage.set(Stage::Serving { answer });
        }
    }
}

/// What one request is counted against: one `INCR` (and `EXPIRE`) per limit,
/// in one atomic pipeline, and the limits in the same order.
struct Counts {
    pipe: redis::Pipeline,
    limits: Vec<u32>,
    now: u64,
}

impl Counts {
    /// `None` when nothing is to be counted: an exempt route, or neither an
    /// address nor a user with a limit.
    fn of(config: &ApiConfig, request: &Request) -> Option<Counts> {
        if exempt(request.uri().path()) {
            return None;
        }
        let limits = &config.rate_limits;
        let ip = client_ip(request.headers(), request.extensions(), config)
            .filter(|_| limits.per_ip_per_minute > 0);
        let user = crate::auth::bearer_from_headers(request.headers())
            .and_then(|token| crate::auth::jwt::verify(&config.jwt, token).ok())
            .map(|v| v.user_id)
            .filter(|_| limits.per_user_per_minute > 0);
        if ip.is_none() && user.is_none() {
            return None;
        }
        let now = now_secs();
        let window = now / WINDOW_SECS;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut checks: Vec<u32> = Vec::with_capacity(2);
        for (key, limit) in [
            ip.map(|ip| (ip_window_key(config, ip, window), limits.per_ip_per_minute)),
            user.map(|u| {
                (
                    user_window_key(config, u, window),
                    limits.per_user_per_minute,
                )
            }),
        ]
        .into_iter()
        .flatten()
        {
            // The window is in the key; the expiry only cleans up.
            pipe.cmd("INCR")
                .arg(&key)
                .cmd("EXPIRE")
                .arg(&key)
                .arg(WINDOW_SECS * 2)
                .ignore();
            checks.push(limit);
        }
        Some(Counts {
            pipe,
            limits: checks,
            now,
        })
    }

    /// Counts the request: the seconds until the window turns when it is over
    /// a limit; `None` when it is within them, or Redis could not say (the
    /// limits fail open).
    async fn over_limit(self, config: Arc<ApiConfig>, mut redis: ConnectionManager) -> Option<u64> {
        let counted: Vec<u64> = REDIS
            .call(&config, "general", self.pipe.query_async(&mut redis))
            .await?;
        counted
            .iter()
            .zip(&self.limits)
            .any(|(n, limit)| *n > u64::from(*limit))
            .then(|| WINDOW_SECS - self.now % WINDOW_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keys_live_under_the_deployment_prefix() {
        let c = ApiConfig::for_development(vec![0; 32], "test");
        assert_eq!(
            ip_window_key(&c, "192.0.2.1".parse().unwrap(), 7),
            "test:rl:ip:192.0.2.1:7"
        );
        let user = Uuid::nil();
        assert!(user_window_key(&c, user, 7).starts_with("test:rl:user:"));
    }
}
