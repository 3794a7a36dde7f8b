//! Private PostgreSQL and Redis instances for development and tests.
//!
//! `boxoffice up` (with no `DATABASE_URL` / `REDIS_URL`) and the test suite both
//! start their services through [`LocalServices::start`]: the servers from the OS
//! packages, listening on free loopback ports only, with their data in a folder
//! of the project's (`.boxoffice/` by default). System instances and their ports
//! are never touched. Stopping is explicit ([`LocalServices::stop`]) and also
//! happens, more bluntly, when the handle is dropped.

pub(crate) mod ports;
mod postgres;
mod redis_server;
mod unprivileged;

use std::path::{Path, PathBuf};

pub use postgres::LocalPostgres;
pub(crate) use postgres::tail;
pub use redis_server::LocalRedis;

/// How durable the services must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Normal settings: data survives crashes.
    Durable,
    /// For throwaway test data: no fsync, no snapshots. Much faster.
    Ephemeral,
}

/// The servers this process started; either may be absent when its URL was given.
pub struct LocalServices {
    pub postgres: Option<LocalPostgres>,
    pub redis: Option<LocalRedis>,
}

impl LocalServices {
    /// Starts (initialising on first use) the servers asked for, under `data_dir`.
    /// Starts the servers asked for on free loopback ports other than
    /// `reserved` (e.g. the API's port, picked before and not yet bound).
    pub async fn start(
        data_dir: &Path,
        durability: Durability,
        postgres: bool,
        redis: bool,
        reserved: &[u16],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let data_dir = std::fs::canonicalize(data_dir)?;
        let mut started = LocalServices {
            postgres: None,
            redis: None,
        };
        if postgres {
            let port = ports::free_loopback_port_except(reserved)?;
            started.postgres = Some(LocalPostgres::start_on(&data_dir, durability, port).await?);
        }
        if redis {
            let port = ports::free_loopback_port_except(reserved)?;
            match LocalRedis::start_on(&data_dir, durability, port).await {
                Ok(r) => started.redis = Some(r),
                Err(e) => {
                    started.stop().await;
                    return Err(e);
                }
            }
        }
        Ok(started)
    }

    pub async fn stop(self) {
        if let Some(r) = self.redis {
            r.stop().await;
        }
        if let Some(p) = self.postgres {
            p.stop().await;
        }
    }
}

/// The folder where a service keeps its files, created if missing.
fn service_dir(data_dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join(name);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A random password for a private server, kept in the data folder so a second
/// start reuses it.
fn stored_secret(path: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(existing) = std::fs::read_to_string(path) {
        let trimmed = existing.trim();
        if !trimmed.is_empty() {
            return Ok(trimmed.to_owned());
        }
    }
    let secret = crate::secrets::random_token(24);
    std::fs::write(path, &secret)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(secret)
}
