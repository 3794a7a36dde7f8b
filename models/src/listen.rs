//! Connections that `LISTEN` for Postgres's notifications, for the tasks that
//! react to changes (the API's change feed, the relay's wake-up).
//!
//! A listening connection is taken out of the pool for good: it must not serve
//! queries for others, and its notifications belong to its one listener.

use std::time::Duration;

use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};

use crate::DbPool;

/// The first wait before listening again after the connection was lost or
/// could not be had; it doubles up to [`LAST_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_millis(100);
pub const LAST_RETRY: Duration = Duration::from_secs(5);

/// The wait after `retry`.
pub fn next_retry(retry: Duration) -> Duration {
    (retry * 2).min(LAST_RETRY)
}

/// A connection taken from `db` for good, listening on every one of `channels`.
pub async fn listening_connection(
    db: &DbPool,
    channels: &[&str],
) -> anyhow::Result<AsyncPgConnection> {
    let mut conn = Object::take(db.get().await?);
    let listen: Vec<String> = channels.iter().map(|c| format!("LISTEN {c}")).collect();
    conn.batch_execute(&listen.join("; ")).await?;
    Ok(conn)
}
