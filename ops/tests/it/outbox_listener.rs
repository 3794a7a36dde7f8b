//! The relay is woken when any process commits a message due at once
//! (`workers::outbox_listener` and the outbox's trigger): not by a message due
//! later, not before the commit, and again after its connection was lost.

use std::sync::Arc;
use std::time::Duration;

use boxoffice_models::outbox;
use boxoffice_workers::outbox_listener::nudge_on_commit;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::harness::TestApp;

/// A notification takes about a millisecond; the margin is for a loaded CI machine.
const WOKEN_WITHIN: Duration = Duration::from_secs(2);
/// How long "no wake" is watched for.
const QUIET_FOR: Duration = Duration::from_millis(300);

async fn woken(relay: &Notify, within: Duration) -> bool {
    tokio::time::timeout(within, relay.notified()).await.is_ok()
}

async fn push(conn: &mut AsyncPgConnection, delay: Option<chrono::Duration>) {
    outbox::push(
        conn,
        "send_email",
        &serde_json::json!({ "notification_id": uuid::Uuid::now_v7() }),
        delay.map(|d| chrono::Utc::now() + d),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_relay_is_woken_by_a_commit_of_a_message_due_now_only() {
    let app = TestApp::spawn().await;
    let relay = Arc::new(Notify::new());
    let shutdown = CancellationToken::new();
    tokio::spawn(nudge_on_commit(
        app.pool().clone(),
        relay.clone(),
        shutdown.clone(),
    ));
    // Listening starts with a look of its own (for what was committed before).
    assert!(woken(&relay, WOKEN_WITHIN).await, "no first look");
    let mut conn = app.raw_conn().await;

    push(&mut conn, None).await;
    assert!(
        woken(&relay, WOKEN_WITHIN).await,
        "a message due now did not wake the relay"
    );

    push(&mut conn, Some(chrono::Duration::minutes(5))).await;
    assert!(
        !woken(&relay, QUIET_FOR).await,
        "a message due later woke the relay"
    );

    // Nothing is heard before the commit; the commit is heard.
    let mut open = app.raw_conn().await;
    let (tx_started, tx_done) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        open.transaction::<_, diesel::result::Error, _>(async |c| {
            push(c, None).await;
            let _ = tx_started.send(());
            tokio::time::sleep(QUIET_FOR * 2).await;
            Ok(())
        })
        .await
        .unwrap();
    });
    tx_done.await.unwrap();
    assert!(!woken(&relay, QUIET_FOR).await, "woken before the commit");
    writer.await.unwrap();
    assert!(
        woken(&relay, WOKEN_WITHIN).await,
        "the commit did not wake the relay"
    );

    // A lost connection is replaced, with a look of its own, and heard again.
    let ended: usize = diesel::sql_query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND query = 'LISTEN boxoffice_outbox'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(ended, 1, "one listening connection was ended");
    assert!(
        woken(&relay, WOKEN_WITHIN).await,
        "no look after listening again"
    );
    // The new connection may still be on its way: wait until it listens.
    let mut heard = false;
    for _ in 0..20 {
        push(&mut conn, None).await;
        if woken(&relay, Duration::from_millis(100)).await {
            heard = true;
            break;
        }
    }
    assert!(heard, "a commit after the reconnection was not heard");
    shutdown.cancel();
}
