//! Rate limits shared across API replicas through Redis.
//!
//! Two mechanisms, both keyed under [`ApiConfig::redis_key`] so every deployment
//! (and every test) has its own namespace:
//!
//! - **General limits** ([`enforce`], a middleware on every route but the
//!   health probes): a fixed one-minute window per client IP and per user,
//!   `INCR` + `EXPIRE` in one atomic pipeline → 429 `rate_limited`.
//! - **Login lockout** ([`check_login_lockout`], [`record_login_failure`],
//!   [`clear_account_failures`]): failed logins counted per account and per IP;
//!   at `login_failures` failures the key's expiry is reset to the full lockout,
//!   and until it expires every login for that account or from that IP gets 429
//!   `too_many_login_attempts`, even with the right password.
//!
//! Redis being slow or down must not take the API down: every call has a short
//! timeout, a failure is logged and the request is let through (fail open), and
//! after a failure Redis is skipped for a few seconds so requests do not each
//! wait for the timeout.

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderName};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use redis::Script;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::ApiConfig;
use crate::error::AppError;
use crate::redis_guard::RedisGuard;
use crate::state::AppState;

/// How long one Redis call may take before the limit is skipped.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// After a Redis failure, limits are skipped this long without trying Redis.
const BREAKER_OPEN: Duration = Duration::from_secs(5);
const WINDOW_SECS: u64 = 60;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

// ---------------------------------------------------------------- client IP

/// The client's address: the socket peer, or the first `X-Forwarded-For` hop
/// when the deployment sits behind a trusted proxy. `None` when neither is known
/// (an in-process request without connection info).
pub fn client_ip(
    headers: &HeaderMap,
    extensions: &Extensions,
    config: &ApiConfig,
) -> Option<IpAddr> {
    if config.trust_forwarded_for {
        let forwarded = headers
            .get(&X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|first| first.trim().parse::<IpAddr>().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// Extractor for [`client_ip`]; never fails.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(
            &parts.headers,
            &parts.extensions,
            &state.config,
        )))
    }
}

/// The part of an address one client controls: an IPv4 address, or an IPv6 /64
/// (a single host is usually handed a whole /64, so counting single IPv6
/// addresses would let one client rotate through billions of them).
pub fn ip_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

// ---------------------------------------------------------------- Redis calls

/// Per-prefix breaker: the deployment's (or the test's) Redis is skipped until
/// the instant stored here. Keyed by prefix so one test's outage does not
/// switch off the limits of another test in the same process.
/// Rate limits fail open: while Redis misbehaves, requests are served unthrottled.
static REDIS: LazyLock<RedisGuard> =
    LazyLock::new(|| RedisGuard::new("rate_limit", REDIS_TIMEOUT, BREAKER_OPEN));

async fn guarded<T, F>(state: &AppState, what: &'static str, call: F) -> Option<T>
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
fn exempt(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/readyz" | "/metrics" | "/v1/webhooks/stripe"
    )
}

/// Middleware: counts the request against its IP and (when it carries a valid
/// access token) its user, and answers 429 `rate_limited` over either limit.
///
/// The user is taken from the token's signature-checked `sub` without a
/// database lookup: a revoked session still counts against its user, which is
/// what a limit wants.
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if exempt(request.uri().path()) {
        return next.run(request).await;
    }
    let config = &state.config;
    let limits = &config.rate_limits;
    let ip = client_ip(request.headers(), request.extensions(), config)
        .filter(|_| limits.per_ip_per_minute > 0);
    let user = crate::auth::bearer_from_headers(request.headers())
        .and_then(|token| crate::auth::jwt::verify(&config.jwt, token).ok())
        .map(|v| v.user_id)
        .filter(|_| limits.per_user_per_minute > 0);
    if ip.is_none() && user.is_none() {
        return next.run(request).await;
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
    let mut redis = state.redis.clone();
    let counts: Option<Vec<u64>> = guarded(&state, "general", pipe.query_async(&mut redis)).await;
    if let Some(counts) = counts
        && counts
            .iter()
            .zip(&checks)
            .any(|(n, limit)| *n > u64::from(*limit))
    {
        let retry_after = WINDOW_SECS - now % WINDOW_SECS;
        return AppError::too_many_requests("rate_limited", retry_after).into_response();
    }
    next.run(request).await
}

// ---------------------------------------------------------------- login lockout

/// The failure counter of one account. The email is hashed so Redis holds no
/// addresses; it must be the normalised email.
pub fn account_failures_key(config: &ApiConfig, email: &str) -> String {
    let digest = Sha256::digest(email.as_bytes());
    config.redis_key(&format!("login_fail:acct:{}", hex::encode(&digest[..16])))
}

/// The failure counter of one client address.
pub fn ip_failures_key(config: &ApiConfig, ip: IpAddr) -> String {
    config.redis_key(&format!("login_fail:ip:{}", ip_bucket(ip)))
}

fn failure_keys(config: &ApiConfig, email: &str, ip: Option<IpAddr>) -> Vec<String> {
    let mut keys = vec![account_failures_key(config, email)];
    keys.extend(ip.map(|ip| ip_failures_key(config, ip)));
    keys
}

/// Seconds until the longest lockout among KEYS ends, or 0 when none is locked.
/// ARGV: threshold, lockout seconds (used to heal a counter that lost its TTL).
static LOCKOUT_REMAINING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local wait = 0
        for _, key in ipairs(KEYS) do
            local n = tonumber(redis.call('GET', key) or '0')
            if n >= tonumber(ARGV[1]) then
                local ttl = redis.call('TTL', key)
                if ttl < 0 then
                    redis.call('EXPIRE', key, ARGV[2])
                    ttl = tonumber(ARGV[2])
                end
                if ttl > wait then wait = ttl end
            end
        end
        return wait
        ",
    )
});

/// Counts one failure on each of KEYS. The first failure opens the window; the
/// one that reaches the threshold restarts the expiry as the full lockout, so a
/// lockout always lasts its whole length. ARGV: lockout seconds, threshold.
static COUNT_FAILURE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local highest = 0
        for _, key in ipairs(KEYS) do
            local n = redis.call('INCR', key)
            if n == 1 or n >= tonumber(ARGV[2]) then
                redis.call('EXPIRE', key, ARGV[1])
            end
            if n > highest then highest = n end
        end
        return highest
        ",
    )
});

/// 429 `too_many_login_attempts` (with `Retry-After`) while the account or the
/// address is locked out.
pub async fn check_login_lockout(
    state: &AppState,
    email: &str,
    ip: Option<IpAddr>,
) -> Result<(), AppError> {
    let limits = &state.config.rate_limits;
    if limits.login_failures == 0 {
        return Ok(());
    }
    let keys = failure_keys(&state.config, email, ip);
    let mut invocation = LOCKOUT_REMAINING.prepare_invoke();
    for key in &keys {
        invocation.key(key);
    }
    invocation
        .arg(limits.login_failures)
        .arg(limits.lockout.as_secs().max(1));
    let mut redis = state.redis.clone();
    let remaining: Option<u64> =
        guarded(state, "login_lockout", invocation.invoke_async(&mut redis)).await;
    match remaining {
        Some(secs) if secs > 0 => Err(AppError::too_many_requests("too_many_login_attempts", secs)),
        _ => Ok(()),
    }
}

/// Counts a failed login (or a wrong current password) against the account and
/// the address.
pub async fn record_login_failure(state: &AppState, email: &str, ip: Option<IpAddr>) {
    let limits = &state.config.rate_limits;
    if limits.login_failures == 0 {
        return;
    }
    let keys = failure_keys(&state.config, email, ip);
    let mut invocation = COUNT_FAILURE.prepare_invoke();
    for key in &keys {
        invocation.key(key);
    }
    invocation
        .arg(limits.lockout.as_secs().max(1))
        .arg(limits.login_failures);
    let mut redis = state.redis.clone();
    let count: Option<u64> =
        guarded(state, "login_failure", invocation.invoke_async(&mut redis)).await;
    if count.is_some_and(|n| n >= u64::from(limits.login_failures)) {
        tracing::warn!(client.ip = ?ip, "login lockout started");
    }
}

/// A successful login clears the account's failures (not the address's: one
/// success must not unlock an address that is guessing other accounts).
pub async fn clear_account_failures(state: &AppState, email: &str) {
    let key = account_failures_key(&state.config, email);
    let mut redis = state.redis.clone();
    let _: Option<u64> = guarded(
        state,
        "login_clear",
        redis::cmd("DEL").arg(&key).query_async(&mut redis),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use axum::http::HeaderValue;

    use super::*;

    fn config(trust: bool) -> ApiConfig {
        let mut c = ApiConfig::for_development(vec![0; 32], "test");
        c.trust_forwarded_for = trust;
        c
    }

    fn peer(ip: &str) -> Extensions {
        let mut e = Extensions::new();
        e.insert(ConnectInfo(SocketAddr::new(ip.parse().unwrap(), 4000)));
        e
    }

    #[test]
    fn the_peer_address_is_used_unless_the_proxy_is_trusted() {
        let mut h = HeaderMap::new();
        h.insert(
            &X_FORWARDED_FOR,
            HeaderValue::from_static("203.0.113.9, 10.0.0.1"),
        );
        let ext = peer("10.0.0.1");
        assert_eq!(
            client_ip(&h, &ext, &config(false)),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            client_ip(&h, &ext, &config(true)),
            Some("203.0.113.9".parse().unwrap())
        );
    }

    #[test]
    fn a_garbled_forwarded_header_falls_back_to_the_peer() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("not an ip"));
        assert_eq!(
            client_ip(&h, &peer("10.0.0.2"), &config(true)),
            Some("10.0.0.2".parse().unwrap())
        );
        assert_eq!(client_ip(&h, &Extensions::new(), &config(false)), None);
    }

    #[test]
    fn ipv6_clients_are_bucketed_by_64_bit_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(ip_bucket(a), ip_bucket(b));
        assert_eq!(ip_bucket(a), "2001:db8:1:2::/64");
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert_eq!(ip_bucket(mapped), "192.0.2.1");
        assert_ne!(ip_bucket(IpAddr::V6(Ipv6Addr::LOCALHOST)), ip_bucket(a));
    }

    #[test]
    fn keys_live_under_the_deployment_prefix_and_hide_the_email() {
        let c = config(false);
        let k = account_failures_key(&c, "someone@example.com");
        assert!(k.starts_with("test:login_fail:acct:"), "{k}");
        assert!(!k.contains("someone"));
        assert_eq!(k, account_failures_key(&c, "someone@example.com"));
        assert_ne!(k, account_failures_key(&c, "other@example.com"));
        assert!(ip_window_key(&c, "192.0.2.1".parse().unwrap(), 7).starts_with("test:rl:ip:"));
    }
}
