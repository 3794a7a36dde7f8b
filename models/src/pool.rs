//! The Postgres connection pool every process shares.

use std::time::Duration;

use diesel::ConnectionError;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

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
    config.custom_setup = Box::new(|url| Box::pin(establish_bounded(url.to_owned())));
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

/// Opens `count` connections of `pool` at once and gives them back to it; says
/// how many opened. A pool opens connections only when asked, so without this
/// the first burst after a process starts (a sale opening as a release rolls
/// out, a worker restarted mid-sale) pays a Postgres backend start-up, the
/// session settings and a cold statement cache per connection, all at once and
/// in front of the burst's own work. Each opened connection then runs the
/// statements it is for once ([`crate::prime`]). A failure is left to the
/// requests: they open their connections as before.
pub async fn warm(pool: &DbPool, count: usize, primer: crate::prime::Primer) -> usize {
    // All are held until all are primed: one given back early would be taken
    // again instead of a new one being opened.
    let mut opened: Vec<DbConn> = futures::future::join_all((0..count).map(|_| pool.get()))
        .await
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    futures::future::join_all(opened.iter_mut().map(async |conn| {
        if let Err(e) = crate::prime::prime(conn, primer).await {
            tracing::debug!(error = %e, "a warmed connection could not be primed");
        }
    }))
    .await;
    opened.len()
}

/// Nothing waits on Postgres forever: a statement waiting longer than this for
/// a row lock fails (its job is retried, its request answered), and a session
/// whose transaction sits idle this long (its task stuck on something else)
/// is ended by Postgres, so the locks it holds cannot stall every other run.
const SESSION_LIMITS: &str =
    "SET lock_timeout = '15s'; SET idle_in_transaction_session_timeout = '60s'";

async fn establish_bounded(url: String) -> diesel::ConnectionResult<AsyncPgConnection> {
    let mut conn = AsyncPgConnection::establish(&url).await?;
    conn.batch_execute(SESSION_LIMITS)
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}
