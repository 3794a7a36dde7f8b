//! What the API needs to know, parsed and validated by `ops` before it starts.

use std::time::Duration;

use boxoffice_models::ticket_codes::{TicketPublicKey, TicketSigner};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone)]
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
    /// Failed logins (per account and per IP) before a lockout.
    pub login_failures: u32,
    pub lockout: Duration,
}

#[derive(Debug, Clone)]
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
    /// Take the client IP from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
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
            trust_forwarded_for: false,
            rate_limits: RateLimitConfig {
                per_ip_per_minute: 6000,
                per_user_per_minute: 3000,
                login_failures: 10,
                lockout: Duration::from_secs(15 * 60),
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
