//! Pooled connections never wait on Postgres forever: a statement blocked on a
//! row lock fails after the pool's lock timeout (15 s) instead of holding its
//! job, its pool slot and the locks it already took.

use std::time::{Duration, Instant};

use diesel_async::SimpleAsyncConnection;

use crate::harness::TestApp;

#[tokio::test]
async fn a_statement_blocked_on_a_row_lock_fails_instead_of_waiting_forever() {
    let app = TestApp::spawn().await;
    let mut holder = app.conns.db.get().await.unwrap();
    let mut waiter = app.conns.db.get().await.unwrap();
    holder
        .batch_execute("CREATE TABLE lock_probe (id int PRIMARY KEY, n int); INSERT INTO lock_probe VALUES (1, 0);")
        .await
        .unwrap();

    // The holder takes the row lock and keeps its transaction open.
    holder
        .batch_execute("BEGIN; UPDATE lock_probe SET n = n + 1 WHERE id = 1;")
        .await
        .unwrap();
    let started = Instant::now();
    let blocked = waiter
        .batch_execute("UPDATE lock_probe SET n = n + 10 WHERE id = 1")
        .await;
    let waited = started.elapsed();
    let error = blocked.expect_err("the blocked update gave up");
    assert!(error.to_string().contains("lock timeout"), "{error}");
    assert!(
        waited >= Duration::from_secs(14) && waited < Duration::from_secs(30),
        "gave up after {waited:?}"
    );

    // The waiter's connection is still good, and goes through once the
    // holder commits.
    holder.batch_execute("COMMIT").await.unwrap();
    waiter
        .batch_execute("UPDATE lock_probe SET n = n + 10 WHERE id = 1")
        .await
        .unwrap();
}
