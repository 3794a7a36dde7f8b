//! A flash sale through real processes: 500 concurrent checkouts for one ticket
//! type of capacity 50, through two API processes and two worker processes.
//! Exactly 50 are sold; expired holds give their seats back; at every moment
//! `sold + held ≤ capacity` and `held` equals the sum of active holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use boxoffice_models::holds;
use boxoffice_models::users::Role;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::future::join_all;
use serde_json::{Value, json};

use crate::checkout_support::{counters, event_on_sale, pull_deadlines};
use crate::harness::TestApp;
use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::redis_url;
use crate::harness::users::TestUser;

const CAPACITY: i32 = 50;
const CHECKOUTS: usize = 500;
/// One buyer per checkout: a participant has one open checkout per event.
const BUYERS: usize = CHECKOUTS;

#[derive(diesel::QueryableByName, Debug)]
struct StatusCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn statuses(conn: &mut AsyncPgConnection) -> Vec<(String, i64)> {
    let rows: Vec<StatusCount> = diesel::sql_query(
        "SELECT status, count(*) AS n FROM workflow_runs GROUP BY status ORDER BY status",
    )
    .load(conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| (r.status, r.n)).collect()
}

fn count_of(rows: &[(String, i64)], status: &str) -> i64 {
    rows.iter()
        .find(|(s, _)| s == status)
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

/// Intent ids of runs waiting for payment.
async fn awaiting_intents(conn: &mut AsyncPgConnection) -> Vec<(String, String)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        intent: String,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT id::text AS id, state->'payment'->>'intent_id' AS intent FROM workflow_runs
          WHERE status = 'waiting' AND step = 'awaiting_payment' ORDER BY created_at",
    )
    .load(conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| (r.id, r.intent)).collect()
}

async fn fire(
    apis: &[String],
    client: &reqwest::Client,
    buyers: &[TestUser],
    event_id: uuid::Uuid,
    ticket_type: uuid::Uuid,
    n: usize,
    tag: &str,
) {
    // 500 buyers at once on 2-core machines overflow the API's connection
    // pools: such a request is answered 503 ("retry shortly"), and a client
    // retries it with the same Idempotency-Key, which can never start a
    // second run. Anything else than 202 or 503 fails the test.
    let retried = std::sync::atomic::AtomicUsize::new(0);
    let requests = (0..n).map(|i| {
        let url = format!("{}/v1/checkouts", apis[i % apis.len()]);
        let buyer = &buyers[i % buyers.len()];
        let key = format!("{tag}-{i}");
        let retried = &retried;
        async move {
            for attempt in 0..20 {
                let r = client
                    .post(&url)
                    .header("authorization", buyer.bearer())
                    .header("idempotency-key", &key)
                    .json(&json!({ "event_id": event_id, "items": [{ "ticket_type_id": ticket_type, "quantity": 1 }] }))
                    .send()
                    .await
                    .unwrap();
                match r.status().as_u16() {
                    202 => return,
                    503 if attempt < 19 => {
                        retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    status => panic!("checkout {key}: {status} {:?}", r.text().await),
                }
            }
        }
    });
    join_all(requests).await;
    println!(
        "race: {n} checkouts started ({} retried after a 503)",
        std::sync::atomic::AtomicUsize::load(&retried, std::sync::atomic::Ordering::Relaxed)
    );
}

/// Waits until no run is `running` or `compensating`.
async fn settle(conn: &mut AsyncPgConnection, within: Duration) -> Vec<(String, i64)> {
    let started = Instant::now();
    loop {
        let rows = statuses(conn).await;
        if count_of(&rows, "running") == 0 && count_of(&rows, "compensating") == 0 {
            return rows;
        }
        assert!(started.elapsed() < within, "runs did not settle: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_buyers_fifty_seats_two_apis_two_workers() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyers = join_all((0..BUYERS).map(|_| app.create_user(&[Role::Participant]))).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, CAPACITY)], 1).await;
    let setup_started = Instant::now();
    let tt = event.ticket_types[0];

    let deployment = Deployment::new(&app.db.url, &redis_url(), &app.redis_prefix)
        .env("BOXOFFICE_STRIPE_API_BASE", &sandbox.base_url)
        .env("BOXOFFICE_RATE_LIMIT_PER_IP", "100000")
        .env("BOXOFFICE_RATE_LIMIT_PER_USER", "100000")
        .env("BOXOFFICE_SCHEDULE_SWEEP_RUNS", "* * * * * *");
    let api1 = BoxofficeProcess::start(&deployment, "serve").await;
    let api2 = BoxofficeProcess::start(&deployment, "serve").await;
    let _w1 = BoxofficeProcess::start(&deployment, "work").await;
    let _w2 = BoxofficeProcess::start(&deployment, "work").await;
    let apis = vec![
        api1.base_url.clone().unwrap(),
        api2.base_url.clone().unwrap(),
    ];
    println!(
        "race: processes up in {:.2} s",
        setup_started.elapsed().as_secs_f64()
    );

    // Watch the counters the whole time, from a connection of its own.
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (db, watching) = (app.db.url.clone(), watching.clone());
        tokio::spawn(async move {
            let mut conn = AsyncPgConnection::establish(&db).await.unwrap();
            let mut samples = 0u32;
            while AtomicBool::load(&watching, Ordering::Relaxed) {
                let (capacity, sold, held) = counters(&db, tt).await;
                // A CHECK of `ticket_types` already refuses any write that
                // oversells, so this cannot fail; the code's own bookkeeping is
                // what the next check (held = the sum of active holds) watches.
                assert!(
                    sold + held <= capacity,
                    "oversold: sold {sold} + held {held} > {capacity}"
                );
                let bad = holds::inconsistencies(&mut conn).await.unwrap();
                assert!(bad.is_empty(), "held differs from active holds: {bad:?}");
                samples += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            samples
        })
    };

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    let started = Instant::now();
    fire(
        &apis,
        &client,
        &buyers,
        event.event_id,
        tt,
        CHECKOUTS,
        "wave1",
    )
    .await;
    let accepted = started.elapsed();
    let rows = settle(&mut conn, Duration::from_secs(120)).await;
    let decided = started.elapsed();
    println!(
        "race: {CHECKOUTS} checkouts accepted in {:.2} s ({:.0}/s); all held or refused in {:.2} s ({:.0} decisions/s)",
        accepted.as_secs_f64(),
        CHECKOUTS as f64 / accepted.as_secs_f64(),
        decided.as_secs_f64(),
        CHECKOUTS as f64 / decided.as_secs_f64()
    );
    assert_eq!(count_of(&rows, "waiting"), CAPACITY as i64, "{rows:?}");
    assert_eq!(
        count_of(&rows, "compensated"),
        (CHECKOUTS as i64) - CAPACITY as i64,
        "{rows:?}"
    );
    assert_eq!(counters(&app.db.url, tt).await, (CAPACITY, 0, CAPACITY));

    // Forty pay; ten never do.
    let waiting = awaiting_intents(&mut conn).await;
    join_all(
        waiting
            .iter()
            .take(40)
            .map(|(_, intent)| sandbox.pay(intent)),
    )
    .await;
    let started_paying = Instant::now();
    loop {
        let rows = statuses(&mut conn).await;
        if count_of(&rows, "completed") == 40 {
            break;
        }
        assert!(
            started_paying.elapsed() < Duration::from_secs(60),
            "payments not confirmed: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counters(&app.db.url, tt).await, (CAPACITY, 40, 10));
    println!(
        "race: 40 payments confirmed in {:.2} s",
        started_paying.elapsed().as_secs_f64()
    );

    // The ten unpaid holds reach their deadline (pulled in, rather than waiting
    // the event's minute): the sweep finds them, they compensate, held drops to 0.
    pull_deadlines(&app.db.url, "true").await;
    let expiring = Instant::now();
    loop {
        let (_, sold, held) = counters(&app.db.url, tt).await;
        if held == 0 {
            assert_eq!(sold, 40);
            break;
        }
        assert!(
            expiring.elapsed() < Duration::from_secs(60),
            "holds did not expire: held {held}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    println!(
        "race: 10 expired holds released in {:.2} s",
        expiring.elapsed().as_secs_f64()
    );
    // The freed seats sell again, and not one more.
    fire(&apis, &client, &buyers, event.event_id, tt, 100, "wave2").await;
    settle(&mut conn, Duration::from_secs(60)).await;
    let second = awaiting_intents(&mut conn).await;
    assert_eq!(second.len(), 10, "ten seats were free");
    join_all(second.iter().map(|(_, intent)| sandbox.pay(intent))).await;
    let finishing = Instant::now();
    loop {
        let rows = statuses(&mut conn).await;
        if count_of(&rows, "completed") == CAPACITY as i64 {
            break;
        }
        assert!(
            finishing.elapsed() < Duration::from_secs(60),
            "second wave not confirmed: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    watching.store(false, Ordering::Relaxed);
    let samples = watcher.await.expect("the invariants held at every sample");
    assert!(samples > 10, "the watcher sampled {samples} times");

    assert_eq!(
        counters(&app.db.url, tt).await,
        (CAPACITY, CAPACITY, 0),
        "exactly the capacity is sold"
    );
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let tickets: N = diesel::sql_query("SELECT count(*) AS n FROM tickets")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(tickets.n, CAPACITY as i64);
    let stats: Value = sandbox.stats().await;
    for (run, charges) in stats["charges_by_run_id"].as_object().unwrap() {
        assert_eq!(charges, 1, "run {run} charged {charges} times");
    }
    assert_eq!(
        stats["charges_by_run_id"].as_object().unwrap().len(),
        CAPACITY as usize
    );
}
