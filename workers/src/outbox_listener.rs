//! Wakes the relay when any process commits a message that is due now.
//!
//! A run started by the API (another process) used to wait for the relay's
//! next idle look before it reached Redis. The outbox's trigger (migration
//! `000015`) sends a notification on `boxoffice_outbox` when a transaction
//! commits a message due at once; this task listens on a connection of its
//! own and nudges the relay. The relay's idle look stays, for messages that
//! come due later (timers, backstops) and while this connection is down.

use std::sync::Arc;

use boxoffice_models::DbPool;
use boxoffice_models::listen::{FIRST_RETRY, listening_connection, next_retry};
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The channel migration `000015`'s trigger notifies.
pub const CHANNEL: &str = "boxoffice_outbox";

/// Nudges `relay` at every notification until `shutdown`.
pub async fn nudge_on_commit(db: DbPool, relay: Arc<Notify>, shutdown: CancellationToken) {
    let mut retry = FIRST_RETRY;
    while !shutdown.is_cancelled() {
        match listening_connection(&db, &[CHANNEL]).await {
            Ok(mut conn) => {
                retry = FIRST_RETRY;
                // Whatever was committed before the LISTEN is found by this look.
                relay.notify_one();
                let mut heard = std::pin::pin!(conn.notifications_stream());
                loop {
                    tokio::select! {
                        next = heard.next() => match next {
                            Some(Ok(_)) => relay.notify_one(),
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "outbox listener lost; the relay polls until it is back");
                                break;
                            }
                            None => break,
                        },
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "outbox listener cannot listen yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = shutdown.cancelled() => return,
        }
        retry = next_retry(retry);
    }
}
