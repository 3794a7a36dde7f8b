//! Configuration from the environment (and an optional `.env`), validated at
//! start. Every variable is also a flag; `boxoffice --help` lists them with their
//! defaults, and so does the README.

use std::net::SocketAddr;
use std::time::Duration;

use boxoffice_api::config::{ApiConfig, Environment, JwtConfig, RateLimitConfig};
use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvName {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Clone, Args)]
pub struct Settings {
    /// `development` or `production`; production refuses weak secrets and logs JSON.
    #[arg(
        long = "env",
        env = "BOXOFFICE_ENV",
        value_enum,
        default_value = "development",
        global = true
    )]
    pub environment: EnvName,

    /// Postgres URL. `up` starts a private Postgres when it is unset.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// Redis URL. `up` starts a private Redis when it is unset.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, global = true)]
    pub redis_url: Option<String>,

    /// Address the API listens on.
    #[arg(
        long = "http",
        env = "BOXOFFICE_HTTP_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub http_addr: SocketAddr,

    /// HS256 key for access tokens; at least 32 bytes in production. `up` generates one.
    #[arg(
        long,
        env = "BOXOFFICE_JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jwt_secret: Option<String>,

    #[arg(
        long,
        env = "BOXOFFICE_JWT_ISSUER",
        default_value = "boxoffice",
        global = true
    )]
    pub jwt_issuer: String,

    #[arg(
        long,
        env = "BOXOFFICE_JWT_AUDIENCE",
        default_value = "boxoffice-api",
        global = true
    )]
    pub jwt_audience: String,

    /// Comma-separated origins allowed by CORS (none by default).
    #[arg(
        long,
        env = "BOXOFFICE_CORS_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_origins: Vec<String>,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "BOXOFFICE_BODY_LIMIT_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub body_limit_bytes: usize,

    /// Seconds before a request is answered 408 (long polls wait at most 30 s).
    #[arg(
        long,
        env = "BOXOFFICE_REQUEST_TIMEOUT_SECS",
        default_value_t = 40,
        global = true
    )]
    pub request_timeout_secs: u64,

    /// Prefix of every Redis key and queue name of this deployment.
    #[arg(
        long,
        env = "BOXOFFICE_REDIS_PREFIX",
        default_value = "boxoffice",
        global = true
    )]
    pub redis_prefix: String,

    /// How many proxies in front of the API are trusted: the client IP is the
    /// address the outermost of them saw, the Nth entry from the right of
    /// X-Forwarded-For. 0: the connection's peer address.
    #[arg(
        long,
        env = "BOXOFFICE_TRUSTED_PROXIES",
        default_value_t = 0,
        global = true
    )]
    pub trusted_proxies: u32,

    /// Older spelling of BOXOFFICE_TRUSTED_PROXIES=1 (one trusted proxy).
    #[arg(
        long,
        env = "BOXOFFICE_TRUST_FORWARDED_FOR",
        default_value_t = false,
        global = true
    )]
    pub trust_forwarded_for: bool,

    /// Requests per minute from one IP.
    #[arg(
        long,
        env = "BOXOFFICE_RATE_LIMIT_PER_IP",
        default_value_t = 600,
        global = true
    )]
    pub rate_limit_per_ip: u32,

    /// Requests per minute by one signed-in user.
    #[arg(
        long,
        env = "BOXOFFICE_RATE_LIMIT_PER_USER",
        default_value_t = 300,
        global = true
    )]
    pub rate_limit_per_user: u32,

    /// Failed logins to one account from one IP before that account is
    /// locked for that IP.
    #[arg(
        long,
        env = "BOXOFFICE_LOGIN_MAX_FAILURES",
        default_value_t = 10,
        global = true
    )]
    pub login_max_failures: u32,

    /// Failed logins from one IP, to any accounts, before the IP is locked.
    #[arg(
        long,
        env = "BOXOFFICE_LOGIN_IP_MAX_FAILURES",
        default_value_t = 50,
        global = true
    )]
    pub login_ip_max_failures: u32,

    /// Length of a login lockout, in seconds.
    #[arg(
        long,
        env = "BOXOFFICE_LOGIN_LOCKOUT_SECS",
        default_value_t = 900,
        global = true
    )]
    pub login_lockout_secs: u64,

    /// Failed logins to one account from all IPs within the account window
    /// before the account is closed to devices it does not know.
    #[arg(
        long,
        env = "BOXOFFICE_LOGIN_ACCOUNT_MAX_FAILURES",
        default_value_t = 100,
        global = true
    )]
    pub login_account_max_failures: u32,

    /// The account window (and lockout), in seconds.
    #[arg(
        long,
        env = "BOXOFFICE_LOGIN_ACCOUNT_WINDOW_SECS",
        default_value_t = 3600,
        global = true
    )]
    pub login_account_window_secs: u64,

    /// Postgres connections per process (by default two per core of this
    /// machine, at least eight; see `default_db_pool_size`).
    #[arg(
        long,
        env = "BOXOFFICE_DB_POOL_SIZE",
        default_value_t = default_db_pool_size(),
        global = true
    )]
    pub db_pool_size: usize,

    /// Where a `work` process serves Prometheus `/metrics` (API processes serve
    /// it on their own address). Unset: not served.
    #[arg(long, env = "BOXOFFICE_METRICS_ADDR", global = true)]
    pub metrics_addr: Option<SocketAddr>,

    /// Log format; JSON in production, text in development unless set.
    #[arg(long, env = "BOXOFFICE_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,

    /// Log filter, in tracing's EnvFilter syntax.
    #[arg(long, env = "BOXOFFICE_LOG", default_value = "info", global = true)]
    pub log_filter: String,

    /// Base URL of the Stripe-compatible payment API (`up` runs the sandbox and
    /// points here at it).
    #[arg(long, env = "BOXOFFICE_STRIPE_API_BASE", global = true)]
    pub stripe_api_base: Option<String>,

    /// Secret key for the payment API.
    #[arg(
        long,
        env = "BOXOFFICE_STRIPE_SECRET_KEY",
        hide_env_values = true,
        global = true
    )]
    pub stripe_secret_key: Option<String>,

    /// Comma-separated webhook signing secrets (several during a rotation).
    #[arg(
        long,
        env = "BOXOFFICE_STRIPE_WEBHOOK_SECRETS",
        value_delimiter = ',',
        hide_env_values = true,
        global = true
    )]
    pub stripe_webhook_secrets: Vec<String>,

    /// Ed25519 seed (base64, 32 bytes) that signs ticket QR codes; `up` generates one.
    #[arg(
        long,
        env = "BOXOFFICE_TICKET_SIGNING_KEY",
        hide_env_values = true,
        global = true
    )]
    pub ticket_signing_key: Option<String>,

    /// SMTP server for outgoing mail (`smtp://host:port`, `smtps://…`); unset,
    /// mail is written as `.eml` files to BOXOFFICE_MAIL_DIR.
    #[arg(
        long,
        env = "BOXOFFICE_SMTP_URL",
        hide_env_values = true,
        global = true
    )]
    pub smtp_url: Option<String>,

    /// Folder for `.eml` files when no SMTP server is configured.
    #[arg(
        long,
        env = "BOXOFFICE_MAIL_DIR",
        default_value = ".boxoffice/mail",
        global = true
    )]
    pub mail_dir: std::path::PathBuf,

    /// The sender of every email.
    #[arg(
        long,
        env = "BOXOFFICE_MAIL_FROM",
        default_value = "Boxoffice <tickets@boxoffice.test>",
        global = true
    )]
    pub mail_from: String,

    /// Base URL at which people reach this API (`https://tickets.example.com`),
    /// for links in emails (one-click unsubscribe). Unset: `http://` and
    /// BOXOFFICE_HTTP_ADDR, for development; required in production.
    #[arg(long, env = "BOXOFFICE_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Cron expression (with seconds) for the engine's sweep: overdue timers,
    /// expired holds, stalled runs.
    #[arg(
        long,
        env = "BOXOFFICE_SCHEDULE_SWEEP_RUNS",
        default_value = "*/5 * * * * *",
        global = true
    )]
    pub schedule_sweep_runs: String,

    /// Seconds a running or compensating run may go without moving before the
    /// sweep takes it for stalled and re-sends what it waits for.
    #[arg(
        long,
        env = "BOXOFFICE_STALLED_AFTER_SECS",
        default_value_t = 60,
        global = true
    )]
    pub stalled_after_secs: u64,

    /// Seconds the first waitlist entry that does not fit in a ticket type's
    /// free units keeps them for itself before smaller entries behind it are
    /// offered them (then its window starts again).
    #[arg(
        long,
        env = "BOXOFFICE_WAITLIST_HEAD_WAIT_SECS",
        default_value_t = 1800,
        global = true
    )]
    pub waitlist_head_wait_secs: u64,

    /// Seconds a refund the provider answered `pending` waits for its webhook
    /// before the run asks the provider (webhooks get lost).
    #[arg(
        long,
        env = "BOXOFFICE_REFUND_POLL_SECS",
        default_value_t = 180,
        value_parser = clap::value_parser!(i64).range(1..=86_400),
        global = true
    )]
    pub refund_poll_secs: i64,

    /// Refunds an event cancellation keeps in flight at once.
    #[arg(
        long,
        env = "BOXOFFICE_CANCELLATION_MAX_IN_FLIGHT",
        default_value_t = 50,
        value_parser = clap::value_parser!(u32).range(1..=10_000),
        global = true
    )]
    pub cancellation_max_in_flight: u32,

    /// Cron expression (with seconds) for purging expired and revoked sessions.
    #[arg(
        long,
        env = "BOXOFFICE_SCHEDULE_PURGE_SESSIONS",
        default_value = "0 */10 * * * *",
        global = true
    )]
    pub schedule_purge_sessions: String,

    /// Cron expression (with seconds) for planning reminders: starting the
    /// reminder run of each published event and offset that has none.
    #[arg(
        long,
        env = "BOXOFFICE_SCHEDULE_PLAN_REMINDERS",
        default_value = "*/10 * * * * *",
        global = true
    )]
    pub schedule_plan_reminders: String,

    /// Cron expression (with seconds) for the cleanup of old data (see the
    /// `BOXOFFICE_RETENTION_*` settings).
    #[arg(
        long,
        env = "BOXOFFICE_SCHEDULE_CLEANUP",
        default_value = "0 7 * * * *",
        global = true
    )]
    pub schedule_cleanup: String,

    /// Days the step history and signals of a finished run are kept.
    #[arg(
        long,
        env = "BOXOFFICE_RETENTION_RUN_HISTORY_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=36_500),
        global = true
    )]
    pub retention_run_history_days: u32,

    /// Days webhook event ids are kept to recognise a retried webhook (at
    /// least 7, whatever is set: the provider's retry window).
    #[arg(
        long,
        env = "BOXOFFICE_RETENTION_WEBHOOK_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=36_500),
        global = true
    )]
    pub retention_webhook_days: u32,

    /// Days after which a sent email's body is blanked (its row and subject stay).
    #[arg(
        long,
        env = "BOXOFFICE_RETENTION_EMAIL_BODY_DAYS",
        default_value_t = 90,
        value_parser = clap::value_parser!(u32).range(1..=36_500),
        global = true
    )]
    pub retention_email_body_days: u32,

    /// Days audit rows are kept; unset keeps them for ever.
    #[arg(
        long,
        env = "BOXOFFICE_RETENTION_AUDIT_DAYS",
        value_parser = clap::value_parser!(u32).range(1..=36_500),
        global = true
    )]
    pub retention_audit_days: Option<u32>,
}

/// The pool a process opens unless told otherwise: two connections per core
/// of this machine, and never fewer than eight.
///
/// A connection busy in a transaction is a PostgreSQL backend wanting a core;
/// more of them than the cores can run only take turns, and each switch, and
/// each wait on a row another transaction holds while its process waits for
/// a core (a hot ticket type, the funnel's counters), is paid in the
/// database's CPU. Requests past the pool's size wait in this process
/// instead, in their order of arrival. A 50-buyer flash sale on two cores,
/// database and processes on one machine, took a fifth less database CPU per
/// decision with eight connections per process than with twenty, and told
/// its winners a third sooner (README, "A pool sized by the cores").
/// Eight is the floor because a `work` process keeps up to four connections
/// for emails being handed to the SMTP server, and a request waiting for
/// its hold keeps its own. Where the database has a machine of its own, set
/// `BOXOFFICE_DB_POOL_SIZE` for its cores and the number of processes.
pub fn default_db_pool_size() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (2 * cores).max(8)
}

/// Printed in place of a secret.
const REDACTED: &str = "<redacted>";

/// `scheme://host…` without `user:password@`.
fn without_credentials(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://{REDACTED}@{}", &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Settings get printed while debugging: everything but the secrets (keys,
/// and the passwords inside service URLs). Every field is named, so a new one
/// must be placed here too.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Settings {
            environment,
            database_url,
            redis_url,
            http_addr,
            jwt_secret,
            jwt_issuer,
            jwt_audience,
            cors_origins,
            body_limit_bytes,
            request_timeout_secs,
            redis_prefix,
            trusted_proxies,
            trust_forwarded_for,
            rate_limit_per_ip,
            rate_limit_per_user,
            login_max_failures,
            login_ip_max_failures,
            login_lockout_secs,
            login_account_max_failures,
            login_account_window_secs,
            db_pool_size,
            metrics_addr,
            log_format,
            log_filter,
            stripe_api_base,
            stripe_secret_key,
            stripe_webhook_secrets,
            ticket_signing_key,
            smtp_url,
            mail_dir,
            mail_from,
            public_url,
            schedule_sweep_runs,
            stalled_after_secs,
            waitlist_head_wait_secs,
            refund_poll_secs,
            cancellation_max_in_flight,
            schedule_purge_sessions,
            schedule_plan_reminders,
            schedule_cleanup,
            retention_run_history_days,
            retention_webhook_days,
            retention_email_body_days,
            retention_audit_days,
        } = self;
        f.debug_struct("Settings")
            .field("environment", environment)
            .field(
                "database_url",
                &database_url.as_deref().map(without_credentials),
            )
            .field("redis_url", &redis_url.as_deref().map(without_credentials))
            .field("http_addr", http_addr)
            .field("jwt_secret", &jwt_secret.as_ref().map(|_| REDACTED))
            .field("jwt_issuer", jwt_issuer)
            .field("jwt_audience", jwt_audience)
            .field("cors_origins", cors_origins)
            .field("body_limit_bytes", body_limit_bytes)
            .field("request_timeout_secs", request_timeout_secs)
            .field("redis_prefix", redis_prefix)
            .field("trusted_proxies", trusted_proxies)
            .field("trust_forwarded_for", trust_forwarded_for)
            .field("rate_limit_per_ip", rate_limit_per_ip)
            .field("rate_limit_per_user", rate_limit_per_user)
            .field("login_max_failures", login_max_failures)
            .field("login_ip_max_failures", login_ip_max_failures)
            .field("login_lockout_secs", login_lockout_secs)
            .field("login_account_max_failures", login_account_max_failures)
            .field("login_account_window_secs", login_account_window_secs)
            .field("db_pool_size", db_pool_size)
            .field("metrics_addr", metrics_addr)
            .field("log_format", log_format)
            .field("log_filter", log_filter)
            .field("stripe_api_base", stripe_api_base)
            .field(
                "stripe_secret_key",
                &stripe_secret_key.as_ref().map(|_| REDACTED),
            )
            .field(
                "stripe_webhook_secrets",
                &vec![REDACTED; stripe_webhook_secrets.len()],
            )
            .field(
                "ticket_signing_key",
                &ticket_signing_key.as_ref().map(|_| REDACTED),
            )
            .field("smtp_url", &smtp_url.as_deref().map(without_credentials))
            .field("mail_dir", mail_dir)
            .field("mail_from", mail_from)
            .field("public_url", public_url)
            .field("schedule_sweep_runs", schedule_sweep_runs)
            .field("stalled_after_secs", stalled_after_secs)
            .field("waitlist_head_wait_secs", waitlist_head_wait_secs)
            .field("refund_poll_secs", refund_poll_secs)
            .field("cancellation_max_in_flight", cancellation_max_in_flight)
            .field("schedule_purge_sessions", schedule_purge_sessions)
            .field("schedule_plan_reminders", schedule_plan_reminders)
            .field("schedule_cleanup", schedule_cleanup)
            .field("retention_run_history_days", retention_run_history_days)
            .field("retention_webhook_days", retention_webhook_days)
            .field("retention_email_body_days", retention_email_body_days)
            .field("retention_audit_days", retention_audit_days)
            .finish()
    }
}

/// Why a configuration cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("BOXOFFICE_JWT_SECRET is too weak for production: {0}")]
    WeakSecret(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Settings {
    pub fn environment(&self) -> Environment {
        match self.environment {
            EnvName::Development => Environment::Development,
            EnvName::Production => Environment::Production,
        }
    }

    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or(match self.environment {
            EnvName::Production => LogFormat::Json,
            EnvName::Development => LogFormat::Text,
        })
    }

    pub fn database_url(&self) -> Result<&str, ConfigError> {
        self.database_url
            .as_deref()
            .ok_or(ConfigError::Missing("DATABASE_URL"))
    }

    pub fn redis_url(&self) -> Result<&str, ConfigError> {
        self.redis_url
            .as_deref()
            .ok_or(ConfigError::Missing("REDIS_URL"))
    }

    /// Checks what every process needs before it starts anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let secret = self
            .jwt_secret
            .as_deref()
            .ok_or(ConfigError::Missing("BOXOFFICE_JWT_SECRET"))?;
        if self.environment == EnvName::Production {
            check_secret_strength(secret)?;
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(char::is_whitespace) {
            return Err(ConfigError::Invalid {
                name: "BOXOFFICE_REDIS_PREFIX",
                reason: "must be non-empty, without spaces".into(),
            });
        }
        if self.body_limit_bytes < 1024 {
            return Err(ConfigError::Invalid {
                name: "BOXOFFICE_BODY_LIMIT_BYTES",
                reason: "must be at least 1024".into(),
            });
        }
        if self.stalled_after_secs == 0 {
            return Err(ConfigError::Invalid {
                name: "BOXOFFICE_STALLED_AFTER_SECS",
                reason: "must be at least 1".into(),
            });
        }
        if self.db_pool_size == 0 {
            return Err(ConfigError::Invalid {
                name: "BOXOFFICE_DB_POOL_SIZE",
                reason: "must be at least 1".into(),
            });
        }
        for (name, expr) in [
            (
                "BOXOFFICE_SCHEDULE_PURGE_SESSIONS",
                &self.schedule_purge_sessions,
            ),
            ("BOXOFFICE_SCHEDULE_SWEEP_RUNS", &self.schedule_sweep_runs),
            (
                "BOXOFFICE_SCHEDULE_PLAN_REMINDERS",
                &self.schedule_plan_reminders,
            ),
            ("BOXOFFICE_SCHEDULE_CLEANUP", &self.schedule_cleanup),
        ] {
            expr.parse::<cron::Schedule>()
                .map_err(|e| ConfigError::Invalid {
                    name,
                    reason: e.to_string(),
                })?;
        }
        self.validate_cors_origins()?;
        self.ticket_signer()?;
        self.validate_mail()?;
        self.validate_public_url()?;
        Ok(())
    }

    /// `http(s)://host[:port][/path]`; production must say where it is reached.
    fn validate_public_url(&self) -> Result<(), ConfigError> {
        const NAME: &str = "BOXOFFICE_PUBLIC_URL";
        let Some(url) = self.public_url.as_deref() else {
            return if self.environment == EnvName::Production {
                Err(ConfigError::Missing(NAME))
            } else {
                Ok(())
            };
        };
        let well_formed = url.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https")
                && !rest.is_empty()
                && !rest.starts_with('/')
                && !rest.contains(['?', '#', ' ', '@'])
        });
        if well_formed {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                name: NAME,
                reason: format!(
                    "{url:?} is not a base URL; expected e.g. https://tickets.example.com"
                ),
            })
        }
    }

    /// What links in emails are built from: the public URL, and the JWT
    /// secret, which also signs unsubscribe tokens (under their own audience).
    pub fn mail_links(&self) -> boxoffice_workers::mail::LinkSettings {
        boxoffice_workers::mail::LinkSettings {
            public_url: self
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", self.http_addr)),
            unsubscribe_secret: self.jwt_secret.clone().unwrap_or_default().into_bytes(),
        }
    }

    /// The configured origins, blanks dropped.
    fn cors_origins(&self) -> Vec<String> {
        self.cors_origins
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Each origin is `scheme://host[:port]`. `*` is refused: the API lets
    /// allowed origins send credentials, and a wildcard with credentials
    /// would hand every website the signed-in user's access.
    fn validate_cors_origins(&self) -> Result<(), ConfigError> {
        const NAME: &str = "BOXOFFICE_CORS_ORIGINS";
        for origin in self.cors_origins() {
            if origin == "*" {
                return Err(ConfigError::Invalid {
                    name: NAME,
                    reason: "`*` is not allowed (allowed origins may send credentials); \
                             list each origin, e.g. https://tickets.example.com"
                        .into(),
                });
            }
            let well_formed = origin.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https")
                    && !rest.is_empty()
                    && !rest.contains(['/', '*', ' ', '?', '#', '@'])
            }) && axum::http::HeaderValue::from_str(&origin).is_ok();
            if !well_formed {
                return Err(ConfigError::Invalid {
                    name: NAME,
                    reason: format!(
                        "{origin:?} is not an origin; expected scheme://host[:port], e.g. https://tickets.example.com"
                    ),
                });
            }
        }
        Ok(())
    }

    /// `BOXOFFICE_TRUSTED_PROXIES`, or 1 for the older
    /// `BOXOFFICE_TRUST_FORWARDED_FOR=true`.
    fn trusted_proxies(&self) -> u32 {
        if self.trusted_proxies == 0 && self.trust_forwarded_for {
            1
        } else {
            self.trusted_proxies
        }
    }

    /// The API's view of the configuration; call after [`Settings::validate`].
    pub fn api_config(&self) -> Result<ApiConfig, ConfigError> {
        let secret = self.jwt_secret.clone().unwrap_or_default();
        Ok(ApiConfig {
            environment: self.environment(),
            jwt: JwtConfig {
                secret: secret.into_bytes(),
                issuer: self.jwt_issuer.clone(),
                audience: self.jwt_audience.clone(),
                access_ttl: Duration::from_secs(15 * 60),
            },
            refresh_ttl: Duration::from_secs(7 * 24 * 3600),
            cors_origins: self.cors_origins(),
            body_limit_bytes: self.body_limit_bytes,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            redis_prefix: self.redis_prefix.clone(),
            trusted_proxies: self.trusted_proxies(),
            stripe_webhook_secrets: self
                .stripe_webhook_secrets
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            stripe_webhook_tolerance_secs:
                boxoffice_api::webhooks::stripe_signature::DEFAULT_TOLERANCE_SECS,
            ticket_public_key: self.ticket_signer()?.public_key(),
            rate_limits: RateLimitConfig {
                per_ip_per_minute: self.rate_limit_per_ip,
                per_user_per_minute: self.rate_limit_per_user,
                login_failures: self.login_max_failures,
                ip_failures: self.login_ip_max_failures,
                lockout: Duration::from_secs(self.login_lockout_secs),
                account_failures: self.login_account_max_failures,
                account_window: Duration::from_secs(self.login_account_window_secs),
            },
            refund_poll_secs: self.refund_poll_secs,
            cancellation_max_in_flight: self.cancellation_max_in_flight,
        })
    }
}

impl Settings {
    /// The key that signs ticket QR codes (workers) and verifies them (API).
    /// Required in production, where the well-known development key is refused;
    /// in development an unset key means that development key, so a `serve` and
    /// a `work` started without one still agree.
    pub fn ticket_signer(
        &self,
    ) -> Result<boxoffice_models::ticket_codes::TicketSigner, ConfigError> {
        use boxoffice_models::ticket_codes::TicketSigner;
        const NAME: &str = "BOXOFFICE_TICKET_SIGNING_KEY";
        let production = self.environment == EnvName::Production;
        let Some(raw) = self.ticket_signing_key.as_deref() else {
            return if production {
                Err(ConfigError::Missing(NAME))
            } else {
                Ok(TicketSigner::development())
            };
        };
        let signer = TicketSigner::from_base64_seed(raw).map_err(|e| ConfigError::Invalid {
            name: NAME,
            reason: format!("{e} (expected the base64 of a 32-byte seed)"),
        })?;
        if production && signer.is_development() {
            return Err(ConfigError::Invalid {
                name: NAME,
                reason: "the development key is public; generate a key for production".into(),
            });
        }
        Ok(signer)
    }

    /// The sender must be an address; production must not write mail to files.
    fn validate_mail(&self) -> Result<(), ConfigError> {
        use boxoffice_workers::adapters::mailer::{self, MailConfigError};
        if self.environment == EnvName::Production && self.smtp_url.is_none() {
            return Err(ConfigError::Missing("BOXOFFICE_SMTP_URL"));
        }
        // Checked without building the mailer: that would register an SMTP
        // circuit breaker in processes that send no mail.
        mailer::check(&self.mail_settings()).map_err(|e| match e {
            MailConfigError::From(..) => ConfigError::Invalid {
                name: "BOXOFFICE_MAIL_FROM",
                reason: e.to_string(),
            },
            MailConfigError::SmtpUrl(_) => ConfigError::Invalid {
                name: "BOXOFFICE_SMTP_URL",
                reason: e.to_string(),
            },
        })
    }

    pub fn mail_settings(&self) -> boxoffice_workers::adapters::mailer::MailSettings {
        boxoffice_workers::adapters::mailer::MailSettings {
            smtp_url: self.smtp_url.clone(),
            mail_dir: self.mail_dir.clone(),
            from: self.mail_from.clone(),
            smtp_timeout: Duration::from_secs(10),
        }
    }

    /// The payment provider client, behind its circuit breaker.
    pub fn payments(
        &self,
    ) -> Result<
        std::sync::Arc<dyn boxoffice_workers::adapters::payments::PaymentProvider>,
        ConfigError,
    > {
        use boxoffice_workers::adapters::payments::{
            Breaker, BreakerConfig, StripeClient, StripeConfig,
        };
        let base = self
            .stripe_api_base
            .as_deref()
            .ok_or(ConfigError::Missing("BOXOFFICE_STRIPE_API_BASE"))?;
        let key = self
            .stripe_secret_key
            .as_deref()
            .ok_or(ConfigError::Missing("BOXOFFICE_STRIPE_SECRET_KEY"))?;
        let client =
            StripeClient::new(StripeConfig::new(base, key)).map_err(|e| ConfigError::Invalid {
                name: "BOXOFFICE_STRIPE_API_BASE",
                reason: e.to_string(),
            })?;
        Ok(std::sync::Arc::new(Breaker::new(
            "payments",
            client,
            BreakerConfig::default(),
        )))
    }
}

/// A production key must be long and not trivially guessable.
pub fn check_secret_strength(secret: &str) -> Result<(), ConfigError> {
    if secret.len() < 32 {
        return Err(ConfigError::WeakSecret("shorter than 32 bytes"));
    }
    let distinct: std::collections::HashSet<char> = secret.chars().collect();
    if distinct.len() < 10 {
        return Err(ConfigError::WeakSecret("fewer than 10 distinct characters"));
    }
    let lowered = secret.to_lowercase();
    if ["secret", "password", "changeme", "boxoffice"]
        .iter()
        .any(|w| lowered.contains(w))
    {
        return Err(ConfigError::WeakSecret("contains a dictionary word"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_production_secrets_are_refused() {
        assert!(matches!(
            check_secret_strength("short"),
            Err(ConfigError::WeakSecret(_))
        ));
        assert!(matches!(
            check_secret_strength(&"a".repeat(64)),
            Err(ConfigError::WeakSecret("fewer than 10 distinct characters"))
        ));
        assert!(matches!(
            check_secret_strength("my-boxoffice-secret-0123456789abcdef"),
            Err(ConfigError::WeakSecret(_))
        ));
        assert!(check_secret_strength("k3J9x-Qp7vT2mZ8rW4yB6nL1cF5hD0sG").is_ok());
    }

    #[test]
    fn the_default_pool_has_two_connections_per_core_and_at_least_eight() {
        let cores = std::thread::available_parallelism().unwrap().get();
        let size = default_db_pool_size();
        assert!(size >= 8 && size >= 2 * cores, "{size} for {cores} cores");
        assert_eq!(settings(&[]).db_pool_size, size);
        assert_eq!(settings(&["--db-pool-size", "3"]).db_pool_size, 3);
    }

    /// Settings from flags alone, as `boxoffice` would parse them.
    fn settings(args: &[&str]) -> Settings {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            settings: Settings,
        }
        let argv = std::iter::once("boxoffice").chain(args.iter().copied());
        <Cli as clap::Parser>::try_parse_from(argv)
            .expect("flags parse")
            .settings
    }

    #[test]
    fn the_ticket_key_is_required_and_real_in_production() {
        use boxoffice_models::ticket_codes::TicketSigner;
        let development = settings(&["--env", "development"]);
        assert!(development.ticket_signer().unwrap().is_development());
        assert!(matches!(
            settings(&["--env", "production"]).ticket_signer(),
            Err(ConfigError::Missing("BOXOFFICE_TICKET_SIGNING_KEY"))
        ));
        let public_seed = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            b"boxoffice-development-ticket-key",
        );
        assert!(matches!(
            settings(&["--env", "production", "--ticket-signing-key", &public_seed])
                .ticket_signer(),
            Err(ConfigError::Invalid { .. })
        ));
        let seed = TicketSigner::generate_seed_base64();
        let signer = settings(&["--env", "production", "--ticket-signing-key", &seed])
            .ticket_signer()
            .unwrap();
        assert_eq!(
            signer.public_key(),
            TicketSigner::from_base64_seed(&seed).unwrap().public_key()
        );
        assert!(matches!(
            settings(&["--ticket-signing-key", "c2hvcnQ="]).ticket_signer(),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn mail_needs_a_sender_address_and_smtp_in_production() {
        assert!(settings(&[]).validate_mail().is_ok());
        assert!(matches!(
            settings(&["--mail-from", "not an address"]).validate_mail(),
            Err(ConfigError::Invalid {
                name: "BOXOFFICE_MAIL_FROM",
                ..
            })
        ));
        assert!(matches!(
            settings(&["--smtp-url", "http://mail.example.com"]).validate_mail(),
            Err(ConfigError::Invalid {
                name: "BOXOFFICE_SMTP_URL",
                ..
            })
        ));
        assert!(matches!(
            settings(&["--env", "production"]).validate_mail(),
            Err(ConfigError::Missing("BOXOFFICE_SMTP_URL"))
        ));
        assert!(
            settings(&[
                "--env",
                "production",
                "--smtp-url",
                "smtps://mail.example.com"
            ])
            .validate_mail()
            .is_ok()
        );
    }

    #[test]
    fn a_wildcard_or_malformed_cors_origin_is_refused_naming_the_variable() {
        for origins in [
            "*",
            "https://tickets.example.com,*",
            "tickets.example.com",
            "https://a.example/path",
        ] {
            let err = settings(&["--cors-origins", origins])
                .validate_cors_origins()
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        name: "BOXOFFICE_CORS_ORIGINS",
                        ..
                    }
                ),
                "{origins}: {err}"
            );
            assert!(
                err.to_string().starts_with("BOXOFFICE_CORS_ORIGINS"),
                "{err}"
            );
        }
        let ok = settings(&[
            "--cors-origins",
            "https://tickets.example.com,http://localhost:5173",
        ]);
        assert!(ok.validate_cors_origins().is_ok());
        assert_eq!(
            ok.cors_origins(),
            ["https://tickets.example.com", "http://localhost:5173"]
        );
    }

    #[test]
    fn the_older_forwarded_for_switch_means_one_trusted_proxy() {
        assert_eq!(settings(&[]).trusted_proxies(), 0);
        assert_eq!(settings(&["--trust-forwarded-for"]).trusted_proxies(), 1);
        assert_eq!(settings(&["--trusted-proxies", "2"]).trusted_proxies(), 2);
        assert_eq!(
            settings(&["--trusted-proxies", "3", "--trust-forwarded-for"]).trusted_proxies(),
            3
        );
    }

    #[test]
    fn debug_output_of_the_configuration_shows_no_secret() {
        let seed = boxoffice_models::ticket_codes::TicketSigner::generate_seed_base64();
        let secrets = [
            "jwt-key-k3J9xQp7vT2mZ8rW4yB6nL1cF5hD0sG",
            "sk_live_do_not_print",
            "whsec_first_do_not_print",
            "whsec_second_do_not_print",
            seed.as_str(),
            "smtp-password-do-not-print",
            "db-password-do-not-print",
            "redis-password-do-not-print",
        ];
        let settings = settings(&[
            "--jwt-secret",
            secrets[0],
            "--stripe-api-base",
            "https://api.stripe.com",
            "--stripe-secret-key",
            secrets[1],
            "--stripe-webhook-secrets",
            &format!("{},{}", secrets[2], secrets[3]),
            "--ticket-signing-key",
            secrets[4],
            "--smtp-url",
            "smtps://mailer:smtp-password-do-not-print@mail.example.com:465",
            "--database-url",
            "postgres://boxoffice:db-password-do-not-print@db.example.com/boxoffice",
            "--redis-url",
            "redis://:redis-password-do-not-print@cache.example.com:6379",
        ]);
        let api = settings.api_config().unwrap();
        let printed = format!(
            "{settings:?}\n{settings:#?}\n{api:?}\n{api:#?}\n{:?}",
            settings.mail_settings(),
        );
        for secret in secrets {
            assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
        }
        // What is not secret is still there to debug with.
        for visible in [
            "mail.example.com",
            "db.example.com",
            "https://api.stripe.com",
        ] {
            assert!(printed.contains(visible), "{visible} missing:\n{printed}");
        }
    }

    #[test]
    fn the_public_url_is_a_base_url_and_required_in_production() {
        assert!(settings(&[]).validate_public_url().is_ok());
        assert_eq!(
            settings(&["--http", "127.0.0.1:9000"])
                .mail_links()
                .public_url,
            "http://127.0.0.1:9000"
        );
        assert!(matches!(
            settings(&["--env", "production"]).validate_public_url(),
            Err(ConfigError::Missing("BOXOFFICE_PUBLIC_URL"))
        ));
        let ok = settings(&["--public-url", "https://tickets.example.com"]);
        assert!(ok.validate_public_url().is_ok());
        assert_eq!(ok.mail_links().public_url, "https://tickets.example.com");
        for bad in [
            "tickets.example.com",
            "ftp://x",
            "https://x?y=1",
            "https:///path",
        ] {
            assert!(
                settings(&["--public-url", bad])
                    .validate_public_url()
                    .is_err(),
                "{bad}"
            );
        }
    }
}
