//! The Postgres connection pool every process shares.

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};

pub type DbPool = Pool<AsyncPgConnection>;
pub type DbConn = Object<AsyncPgConnection>;

/// Builds a pool. Connections are opened lazily, so this succeeds while Postgres
/// is down; callers see the outage as a pool error on `get()` and map it to 503.
pub fn build_pool(database_url: &str, max_size: usize) -> anyhow::Result<DbPool> {
    // Recycling checks only that the connection is still open (a restarted
    // Postgres closes it), not with a `SELECT 1` on every checkout: that ping
    // was a round trip in front of every request and every step.
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
    let pool = Pool::builder(manager)
        .max_size(max_size)
        // A request must not hang on a dead database: fail fast and let the caller retry.
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()?;
    Ok(pool)
}
