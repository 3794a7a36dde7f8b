//! The task that listens: one connection of its own, `LISTEN` on the three
//! channels, each notification applied to the views as it arrives. When the
//! connection ends (Postgres restarted, the network dropped it), the views stop
//! serving until a new connection listens again.

use std::sync::Weak;
use std::time::Duration;

use boxoffice_models::DbPool;
use boxoffice_models::listen::{FIRST_RETRY, listening_connection, next_retry};
use diesel_async::AsyncPgConnection;
use futures::StreamExt;

use super::{CATALOG_CHANNEL, RUNS_CHANNEL, SESSIONS_CHANNEL, USERS_CHANNEL, Views};

/// How often a quiet listener checks that the API still holds the views.
const OWNER_CHECK: Duration = Duration::from_secs(1);

enum Ended {
    /// The API is gone.
    Dropped,
    /// The connection ended; listen again.
    Lost(String),
}

pub(super) async fn listen_until_dropped(views: Weak<Views>, db: DbPool) {
    let mut retry = FIRST_RETRY;
    loop {
        match listening_connection(
            &db,
            &[
                SESSIONS_CHANNEL,
                USERS_CHANNEL,
                RUNS_CHANNEL,
                CATALOG_CHANNEL,
            ],
        )
        .await
        {
            Ok(mut conn) => {
                let Some(strong) = views.upgrade() else {
                    return;
                };
                // Changes from here on are heard; what was kept before the
                // connection came (nothing, or what an earlier one missed) goes.
                strong.reset(true);
                drop(strong);
                retry = FIRST_RETRY;
                tracing::debug!("listening for changes to sessions, users, runs and sales' terms");
                let ended = hear(&views, &mut conn).await;
                if let Some(strong) = views.upgrade() {
                    strong.reset(false);
                }
                match ended {
                    Ended::Dropped => return,
                    Ended::Lost(why) => {
                        tracing::warn!(error = %why, "change feed lost; reads go to Postgres until it is back");
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "change feed cannot listen yet"),
        }
        if views.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(retry).await;
        retry = next_retry(retry);
    }
}

async fn hear(views: &Weak<Views>, conn: &mut AsyncPgConnection) -> Ended {
    let mut notifications = std::pin::pin!(conn.notifications_stream());
    let mut owner_check = tokio::time::interval(OWNER_CHECK);
    loop {
        tokio::select! {
            heard = notifications.next() => match heard {
                Some(Ok(notification)) => {
                    let Some(strong) = views.upgrade() else {
                        return Ended::Dropped;
                    };
                    strong.changed(&notification.channel, &notification.payload);
                }
                Some(Err(e)) => return Ended::Lost(e.to_string()),
                None => return Ended::Lost("the connection closed".into()),
            },
            _ = owner_check.tick() => {
                if views.strong_count() == 0 {
                    return Ended::Dropped;
                }
            }
        }
    }
}
