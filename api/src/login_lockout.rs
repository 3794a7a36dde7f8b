//! Failed logins and the lockouts they lead to, shared across API replicas
//! through Redis.
//!
//! Three counters, each a key whose first failure opens a window and whose
//! threshold-reaching failure restarts the expiry as the full lockout:
//!
//! - **account and address** (`login_failures` per `lockout`): a guesser
//!   locks the account only for the address they guess from, so nobody can
//!   lock a user out by failing on purpose from elsewhere;
//! - **address** (`ip_failures` per `lockout`): one address guessing many
//!   accounts; higher, as many users may share an address;
//! - **account** (`account_failures` per `account_window`, a slower limit):
//!   guessing spread over many addresses. Once reached, the account is closed
//!   to devices it does not know until the window ends; its **known devices**
//!   (addresses it signed in from successfully within [`KNOWN_DEVICE_TTL`],
//!   IPv6 counted per /64) keep signing in with the right password.
//!
//! Every lockout answers 429 `too_many_login_attempts`, even to the right
//! password. Redis trouble lets logins through (see [`crate::rate_limit`]).

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use sha2::{Digest, Sha256};

use crate::client_ip::ip_bucket;
use crate::config::ApiConfig;
use crate::error::AppError;
use crate::rate_limit::guarded;
use crate::state::AppState;

/// How long a successful sign-in makes its address a known device of the account.
pub const KNOWN_DEVICE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The account part of every key: the email is hashed so Redis holds no
/// addresses; it must be the normalised email.
fn account_id(email: &str) -> String {
    let digest = Sha256::digest(email.as_bytes());
    hex::encode(&digest[..16])
}

/// Failures of one account from every address.
pub fn account_key(config: &ApiConfig, email: &str) -> String {
    config.redis_key(&format!("login_fail:acct:{}", account_id(email)))
}

/// Failures from one address, to any account.
pub fn ip_key(config: &ApiConfig, ip: IpAddr) -> String {
    config.redis_key(&format!("login_fail:ip:{}", ip_bucket(ip)))
}

/// Failures of one account from one address.
pub fn account_ip_key(config: &ApiConfig, email: &str, ip: IpAddr) -> String {
    config.redis_key(&format!(
        "login_fail:acct_ip:{}:{}",
        account_id(email),
        ip_bucket(ip)
    ))
}

/// Present while `ip` is a known device of the account.
pub fn known_device_key(config: &ApiConfig, email: &str, ip: IpAddr) -> String {
    config.redis_key(&format!(
        "login_known:{}:{}",
        account_id(email),
        ip_bucket(ip)
    ))
}

/// One counter and its limits.
struct Counter {
    /// What it locks, for the logs.
    scope: &'static str,
    key: String,
    threshold: u32,
    lockout_secs: u64,
    /// Known devices are not held back by this counter.
    spares_known_devices: bool,
}

/// The counters a login attempt is checked against and counted on.
fn counters(config: &ApiConfig, email: &str, ip: Option<IpAddr>) -> Vec<Counter> {
    let limits = &config.rate_limits;
    let short = limits.lockout.as_secs().max(1);
    let mut counters = vec![Counter {
        scope: "account, for unknown devices",
        key: account_key(config, email),
        threshold: limits.account_failures,
        lockout_secs: limits.account_window.as_secs().max(1),
        spares_known_devices: true,
    }];
    if let Some(ip) = ip {
        for (scope, key, threshold) in [
            (
                "account from this address",
                account_ip_key(config, email, ip),
                limits.login_failures,
            ),
            ("address", ip_key(config, ip), limits.ip_failures),
        ] {
            counters.push(Counter {
                scope,
                key,
                threshold,
                lockout_secs: short,
                spares_known_devices: false,
            });
        }
    }
    // A threshold of 0 switches a counter off.
    counters.retain(|c| c.threshold > 0);
    counters
}

/// Seconds until the longest lockout that applies ends, or 0.
/// KEYS: the counters, then the known-device marker.
/// ARGV, per counter: threshold, lockout seconds (to heal a counter that lost
/// its expiry), 1 if known devices are spared.
static LOCKOUT_REMAINING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local known = redis.call('EXISTS', KEYS[#KEYS]) == 1
        local wait = 0
        for i = 1, #KEYS - 1 do
            local threshold = tonumber(ARGV[3 * i - 2])
            local secs = tonumber(ARGV[3 * i - 1])
            local spared = ARGV[3 * i] == '1' and known
            local n = tonumber(redis.call('GET', KEYS[i]) or '0')
            if not spared and n >= threshold then
                local ttl = redis.call('TTL', KEYS[i])
                if ttl < 0 then
                    redis.call('EXPIRE', KEYS[i], secs)
                    ttl = secs
                end
                if ttl > wait then wait = ttl end
            end
        end
        return wait
        ",
    )
});

/// Counts one failure on each of KEYS. The first failure opens the window; the
/// one that reaches the threshold restarts the expiry as the full lockout, so
/// a lockout always lasts its whole length. ARGV, per key: threshold, lockout
/// seconds. Returns 1 per key whose lockout this failure started, else 0.
static COUNT_FAILURE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local started = {}
        for i = 1, #KEYS do
            local threshold = tonumber(ARGV[2 * i - 1])
            local n = redis.call('INCR', KEYS[i])
            if n == 1 or n >= threshold then
                redis.call('EXPIRE', KEYS[i], ARGV[2 * i])
            end
            started[i] = (n == threshold) and 1 or 0
        end
        return started
        ",
    )
});

/// 429 `too_many_login_attempts` (with `Retry-After`) while a lockout applies
/// to this account from this address.
pub async fn check(state: &AppState, email: &str, ip: Option<IpAddr>) -> Result<(), AppError> {
    let counters = counters(&state.config, email, ip);
    if counters.is_empty() {
        return Ok(());
    }
    let mut invocation = LOCKOUT_REMAINING.prepare_invoke();
    for c in &counters {
        invocation
            .key(&c.key)
            .arg(c.threshold)
            .arg(c.lockout_secs)
            .arg(u8::from(c.spares_known_devices));
    }
    // Without an address there is no device to know.
    invocation.key(match ip {
        Some(ip) => known_device_key(&state.config, email, ip),
        None => state.config.redis_key("login_known:none"),
    });
    let mut redis = state.redis.clone();
    let remaining: Option<u64> =
        guarded(state, "login_lockout", invocation.invoke_async(&mut redis)).await;
    match remaining {
        Some(secs) if secs > 0 => Err(AppError::too_many_requests("too_many_login_attempts", secs)),
        _ => Ok(()),
    }
}

/// Counts a failed login (or a wrong current password).
pub async fn record_failure(state: &AppState, email: &str, ip: Option<IpAddr>) {
    let counters = counters(&state.config, email, ip);
    if counters.is_empty() {
        return;
    }
    let mut invocation = COUNT_FAILURE.prepare_invoke();
    for c in &counters {
        invocation.key(&c.key).arg(c.threshold).arg(c.lockout_secs);
    }
    let mut redis = state.redis.clone();
    let started: Option<Vec<u8>> =
        guarded(state, "login_failure", invocation.invoke_async(&mut redis)).await;
    for (counter, started) in counters.iter().zip(started.unwrap_or_default()) {
        if started == 1 {
            tracing::warn!(client.ip = ?ip, lockout.scope = counter.scope, "login lockout started");
        }
    }
}

/// A successful login: the address's failures on this account are forgiven
/// and the address becomes a known device of the account. Neither the
/// address's own counter (it may be guessing other accounts) nor the
/// account's slow counter (the distributed guessing goes on) is cleared.
pub async fn record_success(state: &AppState, email: &str, ip: Option<IpAddr>) {
    let Some(ip) = ip else {
        return;
    };
    let config = &state.config;
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("DEL")
        .arg(account_ip_key(config, email, ip))
        .ignore()
        .cmd("SET")
        .arg(known_device_key(config, email, ip))
        .arg(1)
        .arg("EX")
        .arg(KNOWN_DEVICE_TTL.as_secs())
        .ignore();
    let mut redis = state.redis.clone();
    let _: Option<()> = guarded(state, "login_success", pipe.query_async(&mut redis)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_live_under_the_deployment_prefix_and_hide_the_email() {
        let c = ApiConfig::for_development(vec![0; 32], "test");
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let k = account_key(&c, "someone@example.com");
        assert!(k.starts_with("test:login_fail:acct:"), "{k}");
        assert!(!k.contains("someone"));
        assert_eq!(k, account_key(&c, "someone@example.com"));
        assert_ne!(k, account_key(&c, "other@example.com"));
        for key in [
            account_ip_key(&c, "someone@example.com", ip),
            known_device_key(&c, "someone@example.com", ip),
        ] {
            assert!(key.starts_with("test:login_"), "{key}");
            assert!(key.ends_with(":192.0.2.1"), "{key}");
            assert!(!key.contains("someone"), "{key}");
        }
    }

    #[test]
    fn a_zero_threshold_switches_a_counter_off() {
        let mut c = ApiConfig::for_development(vec![0; 32], "test");
        let ip = Some("192.0.2.1".parse().unwrap());
        assert_eq!(counters(&c, "a@example.com", ip).len(), 3);
        assert_eq!(counters(&c, "a@example.com", None).len(), 1);
        c.rate_limits.account_failures = 0;
        assert_eq!(counters(&c, "a@example.com", ip).len(), 2);
        c.rate_limits.login_failures = 0;
        assert_eq!(counters(&c, "a@example.com", ip).len(), 1);
        c.rate_limits.ip_failures = 0;
        assert!(counters(&c, "a@example.com", ip).is_empty());
    }
}
