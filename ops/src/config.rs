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

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// `development` or `production`; production refuses weak secrets and logs JSON.
    #[arg(long = "env", env = "BOXOFFICE_ENV", value_enum, default_value = "development", global = true)]
    pub environment: EnvName,

    /// Postgres URL. `up` starts a private Postgres when it is unset.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// Redis URL. `up` starts a private Redis when it is unset.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, global = true)]
    pub redis_url: Option<String>,

    /// Address the API listens on.
    #[arg(long = "http", env = "BOXOFFICE_HTTP_ADDR", default_value = "127.0.0.1:8080", global = true)]
    pub http_addr: SocketAddr,

    /// HS256 key for access tokens; at least 32 bytes in production. `up` generates one.
    #[arg(long, env = "BOXOFFICE_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,

    #[arg(long, env = "BOXOFFICE_JWT_ISSUER", default_value = "boxoffice", global = true)]
    pub jwt_issuer: String,

    #[arg(long, env = "BOXOFFICE_JWT_AUDIENCE", default_value = "boxoffice-api", global = true)]
    pub jwt_audience: String,

    /// Comma-separated origins allowed by CORS (none by default).
    #[arg(long, env = "BOXOFFICE_CORS_ORIGINS", value_delimiter = ',', global = true)]
    pub cors_origins: Vec<String>,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "BOXOFFICE_BODY_LIMIT_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub body_limit_bytes: usize,

    /// Seconds before a request is answered 408 (long polls wait at most 30 s).
    #[arg(long, env = "BOXOFFICE_REQUEST_TIMEOUT_SECS", default_value_t = 40, global = true)]
    pub request_timeout_secs: u64,

    /// Prefix of every Redis key and queue name of this deployment.
    #[arg(long, env = "BOXOFFICE_REDIS_PREFIX", default_value = "boxoffice", global = true)]
    pub redis_prefix: String,

    /// Take the client IP from X-Forwarded-For (only behind a trusted proxy).
    #[arg(long, env = "BOXOFFICE_TRUST_FORWARDED_FOR", default_value_t = false, global = true)]
    pub trust_forwarded_for: bool,

    /// Requests per minute from one IP.
    #[arg(long, env = "BOXOFFICE_RATE_LIMIT_PER_IP", default_value_t = 600, global = true)]
    pub rate_limit_per_ip: u32,

    /// Requests per minute by one signed-in user.
    #[arg(long, env = "BOXOFFICE_RATE_LIMIT_PER_USER", default_value_t = 300, global = true)]
    pub rate_limit_per_user: u32,

    /// Failed logins (per account, per IP) before a lockout.
    #[arg(long, env = "BOXOFFICE_LOGIN_MAX_FAILURES", default_value_t = 10, global = true)]
    pub login_max_failures: u32,

    /// Length of a login lockout, in seconds.
    #[arg(long, env = "BOXOFFICE_LOGIN_LOCKOUT_SECS", default_value_t = 900, global = true)]
    pub login_lockout_secs: u64,

    /// Postgres connections per process.
    #[arg(long, env = "BOXOFFICE_DB_POOL_SIZE", default_value_t = 20, global = true)]
    pub db_pool_size: usize,

    /// Log format; JSON in production, text in development unless set.
    #[arg(long, env = "BOXOFFICE_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,

    /// Log filter, in tracing's EnvFilter syntax.
    #[arg(long, env = "BOXOFFICE_LOG", default_value = "info", global = true)]
    pub log_filter: String,

    /// Cron expression (with seconds) for purging expired and revoked sessions.
    #[arg(long, env = "BOXOFFICE_SCHEDULE_PURGE_SESSIONS", default_value = "0 */10 * * * *", global = true)]
    pub schedule_purge_sessions: String,
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
        self.database_url.as_deref().ok_or(ConfigError::Missing("DATABASE_URL"))
    }

    pub fn redis_url(&self) -> Result<&str, ConfigError> {
        self.redis_url.as_deref().ok_or(ConfigError::Missing("REDIS_URL"))
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
        if self.db_pool_size == 0 {
            return Err(ConfigError::Invalid {
                name: "BOXOFFICE_DB_POOL_SIZE",
                reason: "must be at least 1".into(),
            });
        }
        self.schedule_purge_sessions
            .parse::<cron::Schedule>()
            .map_err(|e| ConfigError::Invalid {
                name: "BOXOFFICE_SCHEDULE_PURGE_SESSIONS",
                reason: e.to_string(),
            })?;
        Ok(())
    }

    /// The API's view of the configuration; call after [`Settings::validate`].
    pub fn api_config(&self) -> Result<ApiConfig, ConfigError> {
        self.validate()?;
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
            cors_origins: self.cors_origins.iter().filter(|o| !o.is_empty()).cloned().collect(),
            body_limit_bytes: self.body_limit_bytes,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            redis_prefix: self.redis_prefix.clone(),
            trust_forwarded_for: self.trust_forwarded_for,
            rate_limits: RateLimitConfig {
                per_ip_per_minute: self.rate_limit_per_ip,
                per_user_per_minute: self.rate_limit_per_user,
                login_failures: self.login_max_failures,
                lockout: Duration::from_secs(self.login_lockout_secs),
            },
        })
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
    if ["secret", "password", "changeme", "boxoffice"].iter().any(|w| lowered.contains(w)) {
        return Err(ConfigError::WeakSecret("contains a dictionary word"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_production_secrets_are_refused() {
        assert!(matches!(check_secret_strength("short"), Err(ConfigError::WeakSecret(_))));
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
}
