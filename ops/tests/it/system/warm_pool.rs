//! A process opens its pool's Postgres connections as it starts, so the first
//! burst of work after a start (a sale opening as a release rolls out) does
//! not pay a backend start-up per connection in front of its own work.

use std::time::{Duration, Instant};

use boxoffice_models::prime::Primer;
use boxoffice_models::testing::{StatementCounts, TestDatabase};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::fault_support::scalar;
use crate::checkout_support::statement_calls;
use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::redis_url;

/// Client connections to this database, apart from the one asking.
const BACKENDS: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE datname = current_database() AND backend_type = 'client backend' \
       AND pid <> pg_backend_pid()";

/// How the batch statement of holds begins.
const HOLD_BATCH: &str = "WITH RECURSIVE req AS";

#[tokio::test]
async fn an_api_process_opens_its_pool_as_it_starts() {
    const POOL_SIZE: i64 = 16;
    let db = TestDatabase::create().await.unwrap();
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    let deployment = Deployment::new(
        &db.url,
        &redis_url(),
        &format!("t{}", uuid::Uuid::new_v4().simple()),
    )
    .env("BOXOFFICE_DB_POOL_SIZE", &POOL_SIZE.to_string());
    // Nothing asks the API anything but `/readyz`: an idle process needs two
    // or three connections, a warmed one has its whole pool open.
    let mut api = BoxofficeProcess::start(&deployment, "serve").await;
    let started = Instant::now();
    let open = loop {
        let open = scalar(&mut conn, BACKENDS).await;
        if open >= POOL_SIZE || started.elapsed() > Duration::from_secs(15) {
            break open;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The hold lanes' pool too, each connection primed with the batch of
    // holds (the last statement an idle backend shows).
    let primed_lanes = format!(
        "SELECT count(*) FROM pg_stat_activity \
          WHERE datname = current_database() AND state = 'idle' \
            AND query LIKE '{HOLD_BATCH}%'"
    );
    let lanes = loop {
        let lanes = scalar(&mut conn, &primed_lanes).await;
        if lanes >= 4 || started.elapsed() > Duration::from_secs(15) {
            break lanes;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(api.terminate().await, "the API did not stop cleanly");
    assert!(
        open >= POOL_SIZE,
        "{open} connections open 15 s after start, pool of {POOL_SIZE}"
    );
    assert_eq!(
        lanes, 4,
        "hold lane connections open and primed 15 s after start"
    );
}

#[tokio::test]
async fn warming_a_pool_of_an_unreachable_postgres_opens_nothing_and_returns() {
    // Port 9 (discard) has nothing listening on loopback: every connect is refused.
    let pool =
        boxoffice_models::pool::build_pool("postgres://boxoffice@127.0.0.1:9/none", 4).unwrap();
    let started = Instant::now();
    let opened = boxoffice_models::pool::warm(&pool, 4, Primer::Requests).await;
    assert_eq!(opened, 0);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "warming took {:?}",
        started.elapsed()
    );
    assert_eq!(pool.status().size, 0);
}

/// How often this database's sessions ran a statement whose text starts with
/// `start` (from `pg_stat_statements`, which the test services load).
async fn calls_of(conn: &mut AsyncPgConnection, start: &str) -> i64 {
    statement_calls(conn, &format!("{start}%")).await
}

/// A new database whose sessions count the statements that functions and
/// triggers run too (`pg_stat_statements.track = all`), and a connection to it.
async fn counting_database() -> (TestDatabase, AsyncPgConnection) {
    let db = TestDatabase::create_counting(StatementCounts::All)
        .await
        .unwrap();
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    diesel::sql_query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&mut conn)
        .await
        .unwrap();
    (db, conn)
}

#[tokio::test]
async fn each_warmed_connection_runs_a_checkouts_statements_once_and_leaves_nothing() {
    let (db, mut conn) = counting_database().await;
    // The start's lookup and message, and the funnel's counters, which the
    // run's insert and its move to an outcome each update once.
    let (finds, pushes, funnel) = (
        "SELECT run_id, idempotency_key FROM lock_and_find_open_checkout",
        "INSERT INTO \"outbox\"",
        "INSERT INTO analytics_checkouts",
    );
    let before = (
        calls_of(&mut conn, finds).await,
        calls_of(&mut conn, pushes).await,
        calls_of(&mut conn, funnel).await,
    );

    let pool = boxoffice_models::pool::build_pool(&db.url, 4).unwrap();
    assert_eq!(
        boxoffice_models::pool::warm(&pool, 4, Primer::Requests).await,
        4
    );

    assert_eq!(pool.status().size, 4, "four connections, none taken twice");
    assert_eq!(calls_of(&mut conn, finds).await - before.0, 4);
    assert_eq!(calls_of(&mut conn, pushes).await - before.1, 4);
    assert_eq!(
        calls_of(&mut conn, funnel).await - before.2,
        8,
        "each connection fires the funnel's two triggers"
    );
    for table in ["outbox", "workflow_runs", "analytics_checkouts"] {
        assert_eq!(
            scalar(&mut conn, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "the primes' writes to {table} were rolled back"
        );
    }
}

#[tokio::test]
async fn each_warmed_hold_lane_connection_runs_the_batch_of_holds_once_and_takes_nothing() {
    let (db, mut conn) = counting_database().await;
    let before = calls_of(&mut conn, HOLD_BATCH).await;

    let pool = boxoffice_models::pool::build_pool(&db.url, 4).unwrap();
    assert_eq!(
        boxoffice_models::pool::warm(&pool, 4, Primer::HoldLanes).await,
        4
    );

    assert_eq!(pool.status().size, 4);
    assert_eq!(calls_of(&mut conn, HOLD_BATCH).await - before, 4);
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM holds").await, 0);
}

#[tokio::test]
async fn the_writer_of_starts_connection_runs_a_batchs_statements_once_and_leaves_nothing() {
    let (db, mut conn) = counting_database().await;
    let statements = [
        "SELECT s.ord, o.run_id, o.idempotency_key",
        "SELECT \"ticket_types\".\"id\", %\"ticket_types\".\"waiting_units\"",
        HOLD_BATCH,
        "UPDATE workflow_runs r",
        "INSERT INTO analytics_checkouts",
    ];
    let mut before = Vec::new();
    for statement in statements {
        before.push(calls_of(&mut conn, statement).await);
    }

    let pool = boxoffice_models::pool::build_pool(&db.url, 1).unwrap();
    assert_eq!(
        boxoffice_models::pool::warm(&pool, 1, Primer::Starts).await,
        1
    );

    // The funnel's two triggers, as for a request's connection.
    for (statement, (before, expected)) in statements.iter().zip(before.iter().zip([1, 1, 1, 1, 2]))
    {
        assert_eq!(
            calls_of(&mut conn, statement).await - before,
            expected,
            "{statement}"
        );
    }
    for table in ["outbox", "workflow_runs", "holds", "analytics_checkouts"] {
        assert_eq!(
            scalar(&mut conn, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "the prime left nothing in {table}"
        );
    }
}

/// Primes never wait on each other: a deployment's processes warm their
/// pools at the same moment, in front of a running sale.
#[tokio::test]
async fn a_prime_does_not_wait_for_another_connections_prime() {
    let db = TestDatabase::create().await.unwrap();
    let mut first = AsyncPgConnection::establish(&db.url).await.unwrap();
    let mut second = AsyncPgConnection::establish(&db.url).await.unwrap();
    // The first prime runs inside a transaction left open (its own becomes a
    // savepoint): whatever lock it takes is held until that one ends.
    first.begin_test_transaction().await.unwrap();
    boxoffice_models::prime::prime(&mut first, Primer::Requests)
        .await
        .unwrap();

    let primed = tokio::time::timeout(
        Duration::from_secs(5),
        boxoffice_models::prime::prime(&mut second, Primer::Requests),
    )
    .await;
    assert!(
        matches!(primed, Ok(Ok(()))),
        "a prime waited for another connection's: {primed:?}"
    );
    // The first connection's transaction is rolled back as it closes.
    drop(first);
}
