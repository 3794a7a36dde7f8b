//! What the API needs to know, parsed and validated by `ops` before it starts.

use std::fmt;
use std::time::Duration;

use boxoffice_models::ticket_codes::{TicketPublicKey, TicketSigner};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Clone)]
pub struct JwtConfig {
    /// HS256 key; at least 32 bytes in production.
    pub secret: Vec<u8>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Requests per minute from one client IP, on every route.
    pub per_ip_per_minute: u32,
    /// Requests per minute by one authenticated user.
    pub per_user_per_minute: u32,
    /// Failed logins to one account from one client IP before that account
    /// is locked for that IP, for [`RateLimitConfig::lockout`].
    pub login_failures: u32,
    /// Failed logins from one client IP to any account before the IP is
    /// locked out, for [`RateLimitConfig::lockout`]. Higher than
    /// `login_failures`: many users may share one address (offices, carriers).
    pub ip_failures: u32,
    pub lockout: Duration,
    /// Failed logins to one account from every address together within
    /// [`RateLimitConfig::account_window`] before the account is closed to
    /// devices it does not know (until the window ends): the slow limit
    /// against guessing spread over many addresses.
    pub account_failures: u32,
    pub account_window: Duration,
}

#[derive(Clone)]
pub struct ApiConfig {
    /// Seconds a pending refund waits for its webhook before asking the provider.
    pub refund_poll_secs: i64,
    /// Refunds an event cancellation keeps in flight at once.
    pub cancellation_max_in_flight: u32,
    pub environment: Environment,
    pub jwt: JwtConfig,
    pub refresh_ttl: Duration,
    /// Origins allowed by CORS; empty means no cross-origin access.
    pub cors_origins: Vec<String>,
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    /// Prefix of every Redis key this deployment writes (tests use one per test).
    pub redis_prefix: String,
    /// How many proxies the deployment trusts in front of it: the client IP
    /// is the address the outermost of them saw, the `trusted_proxies`-th
    /// entry from the right of `X-Forwarded-For`. 0: the socket peer.
    pub trusted_proxies: u32,
    pub rate_limits: RateLimitConfig,
    /// Endpoint secrets that sign the payment provider's webhooks; several
    /// during a rotation. Empty: every webhook is refused.
    pub stripe_webhook_secrets: Vec<String>,
    /// How far a webhook's signed timestamp may be from now, in seconds.
    pub stripe_webhook_tolerance_secs: i64,
    /// Verifies ticket QR payloads at check-in and is published for offline
    /// scanners. The API never signs: the private key stays with the workers.
    pub ticket_public_key: TicketPublicKey,
}

impl ApiConfig {
    /// Settings for tests and development: short, permissive, never production.
    pub fn for_development(jwt_secret: Vec<u8>, redis_prefix: impl Into<String>) -> Self {
        ApiConfig {
            environment: Environment::Development,
            jwt: JwtConfig {
                secret: jwt_secret,
                issuer: "boxoffice".into(),
                audience: "boxoffice-api".into(),
                access_ttl: Duration::from_secs(15 * 60),
            },
            refresh_ttl: Duration::from_secs(7 * 24 * 3600),
            cors_origins: Vec::new(),
            body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(40),
            redis_prefix: redis_prefix.into(),
            trusted_proxies: 0,
            rate_limits: RateLimitConfig {
                per_ip_per_minute: 6000,
                per_user_per_minute: 3000,
                login_failures: 10,
                ip_failures: 50,
                lockout: Duration::from_secs(15 * 60),
                account_failures: 100,
                account_window: Duration::from_secs(3600),
            },
            stripe_webhook_secrets: Vec::new(),
            stripe_webhook_tolerance_secs:
                crate::webhooks::stripe_signature::DEFAULT_TOLERANCE_SECS,
            ticket_public_key: TicketSigner::development().public_key(),
            refund_poll_secs: boxoffice_workflows::refunding::DEFAULT_POLL_AFTER_SECS,
            cancellation_max_in_flight:
                boxoffice_workflows::event_cancellation::DEFAULT_MAX_IN_FLIGHT,
        }
    }

    /// A Redis key under this deployment's prefix.
    pub fn redis_key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.redis_prefix)
    }
}

/// Printed in place of a secret.
const REDACTED: &str = "<redacted>";

// Configurations get logged and printed while debugging: their `Debug` shows
// everything but the secrets.

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("secret", &REDACTED)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .finish()
    }
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ApiConfig {
            environment,
            jwt,
            refresh_ttl,
            cors_origins,
            body_limit_bytes,
            request_timeout,
            redis_prefix,
            trusted_proxies,
            rate_limits,
            stripe_webhook_secrets,
            stripe_webhook_tolerance_secs,
            ticket_public_key,
            refund_poll_secs,
            cancellation_max_in_flight,
        } = self;
        f.debug_struct("ApiConfig")
            .field("environment", environment)
            .field("jwt", jwt)
            .field("refresh_ttl", refresh_ttl)
            .field("cors_origins", cors_origins)
            .field("body_limit_bytes", body_limit_bytes)
            .field("request_timeout", request_timeout)
            .field("redis_prefix", redis_prefix)
            .field("trusted_proxies", trusted_proxies)
            .field("rate_limits", rate_limits)
            .field(
                "stripe_webhook_secrets",
                &vec![REDACTED; stripe_webhook_secrets.len()],
            )
            .field(
                "stripe_webhook_tolerance_secs",
                stripe_webhook_tolerance_secs,
            )
            .field("ticket_public_key", ticket_public_key)
            .field("refund_poll_secs", refund_poll_secs)
            .field("cancellation_max_in_flight", cancellation_max_in_flight)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_shows_no_secret() {
        let mut config = ApiConfig::for_development(b"jwt-key-do-not-print".to_vec(), "t");
        config.stripe_webhook_secrets = vec!["whsec_do_not_print".into()];
        let printed = format!("{config:?} {config:#?}");
        for secret in ["jwt-key-do-not-print", "whsec_do_not_print"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("redis_prefix"), "{printed}");
    }
}
