//! Fault 5: the payment provider answers 500 to everything for 30 s. Each
//! worker process's breaker opens after a few failures in a row (and the API
//! process's, which makes new checkouts' first intents), so the calls
//! reaching the provider stay bounded (no retry storm); runs wait and complete
//! after the outage; holds whose deadline passes during the outage are released
//! and their intents cancelled once the provider is back.

use std::time::{Duration, Instant};

use boxoffice_models::users::Role;
use futures::future::join_all;
use serde_json::json;

use super::fault_support::{
    Payer, assert_alive, check_invariants, checkout, connect, count_of, log_events, scalar,
    wait_all_finished,
};
use crate::checkout_support::{event_on_sale, pull_deadlines};
use crate::harness::TestApp;
use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::redis_url;

const WORKERS: u64 = 2;
const OUTAGE: Duration = Duration::from_secs(30);
/// Runs waiting for payment when the outage starts; their deadline is pulled in
/// during the outage, so they must cancel their intent (a provider call).
const EXPIRING: usize = 30;
/// Runs started during the outage: they need an intent (a provider call).
const DURING: usize = 100;
/// `BreakerConfig::default()`: opens after 5 failures in a row, open 1 s, doubling, at most 30 s.
const CONSECUTIVE_FAILURES: u64 = 5;
/// `run_effect` tasks per worker process (registry.rs), and the API's calls
/// at once after first steps (`first_steps::CALLS_AT_ONCE`).
const CONCURRENCY: u64 = 16;
/// The processes that call the provider: the workers and the API.
const CALLERS: u64 = WORKERS + 1;
const _: () = assert!(boxoffice_ops::first_steps::CALLS_AT_ONCE as u64 == CONCURRENCY);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_second_provider_outage() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    // One buyer per checkout (a participant has one open checkout per event):
    // the expiring ones first, then those started during the outage.
    let buyers =
        join_all((0..EXPIRING + DURING).map(|_| app.create_user(&[Role::Participant]))).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 2000)], 10).await;
    let tt = event.ticket_types[0];
    let deployment = Deployment::new(&app.db.url, &redis_url(), &app.redis_prefix)
        .env("BOXOFFICE_STRIPE_API_BASE", &sandbox.base_url)
        .env("BOXOFFICE_RATE_LIMIT_PER_IP", "100000")
        .env("BOXOFFICE_RATE_LIMIT_PER_USER", "100000")
        .env("BOXOFFICE_SCHEDULE_SWEEP_RUNS", "* * * * * *");
    let api = BoxofficeProcess::start(&deployment, "serve").await;
    let api_url = api.base_url.clone().unwrap();
    let mut workers = [
        BoxofficeProcess::start(&deployment, "work").await,
        BoxofficeProcess::start(&deployment, "work").await,
    ];
    let client = reqwest::Client::new();
    let fire = |tag: &'static str, n: usize, first_buyer: usize| {
        let (client, api_url, buyers) = (client.clone(), api_url.clone(), &buyers);
        async move {
            for r in join_all((0..n).map(|i| {
                let (client, api_url) = (client.clone(), api_url.clone());
                async move {
                    checkout(
                        &client,
                        &api_url,
                        &buyers[first_buyer + i],
                        event.event_id,
                        tt,
                        1,
                        &format!("{tag}-{i}"),
                    )
                    .await
                }
            }))
            .await
            {
                assert_eq!(r.unwrap().0, 202);
            }
        }
    };

    // Runs that reach "awaiting payment" before the outage, and are never paid.
    fire("expiring", EXPIRING, 0).await;
    let mut conn = connect(&app.db.url).await;
    let started = Instant::now();
    while scalar(
        &mut conn,
        "SELECT count(*) FROM workflow_runs WHERE step = 'awaiting_payment'",
    )
    .await
        < EXPIRING as i64
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "runs did not reach payment"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expiring_ids = "SELECT id FROM workflow_runs WHERE idempotency_key LIKE 'expiring-%'";

    sandbox
        .configure(json!({ "outage": true, "outage_mode": "error" }))
        .await;
    let calls_before = sandbox.stats().await["api_calls"].as_u64().unwrap();
    let outage_started = Instant::now();
    fire("during", DURING, EXPIRING).await;
    pull_deadlines(&app.db.url, &format!("id IN ({expiring_ids})")).await;
    tokio::time::sleep(OUTAGE.saturating_sub(outage_started.elapsed())).await;
    let calls_during = sandbox.stats().await["api_calls"].as_u64().unwrap() - calls_before;
    let held_during = scalar(
        &mut conn,
        &format!(
            "SELECT count(*) FROM holds WHERE status = 'active' AND run_id IN ({expiring_ids})"
        ),
    )
    .await;
    sandbox.configure(json!({ "outage": false })).await;

    // Each process calling the provider has a breaker of its own, and each
    // must have opened: counted per process (a sum would let one breaker
    // opening twice hide another that never opened). The API's made the
    // first intent calls of the runs started during the outage.
    let callers = workers
        .iter()
        .enumerate()
        .map(|(i, w)| (format!("worker process {i}"), w))
        .chain([("the API process".to_owned(), &api)]);
    for (name, process) in callers {
        let opened = log_events(process, "circuit breaker opened")
            .iter()
            .filter(|e| e["dependency"] == "payments")
            .count();
        println!("outage: {name}'s payments breaker opened {opened} times");
        assert!(
            opened >= 1,
            "{name}'s payments breaker never opened during the outage"
        );
    }
    // The bound: per calling process, while closed, at most `CONSECUTIVE_FAILURES` failures
    // plus what was already in flight (CONCURRENCY - 1); then one half-open trial
    // after each open delay (1, 2, 4, 8, 16 s: trials at ≈1, 3, 7, 15, 31 s, so at
    // most 5 in 30 s), each at worst with every concurrent task let through.
    let bound = CALLERS * (CONSECUTIVE_FAILURES + CONCURRENCY - 1 + 5 * CONCURRENCY);
    // Without a breaker each of the 130 runs would retry on its own schedule
    // (250 ms doubling): about 8 calls each in 30 s, over 1,000 calls.
    println!(
        "outage: {calls_during} calls reached the provider in {:.1} s of outage ({} runs needing it; bound {bound}); {held_during} expired holds still active at the end",
        outage_started.elapsed().as_secs_f64(),
        EXPIRING + DURING
    );
    assert!(
        calls_during <= bound,
        "{calls_during} calls during the outage: a retry storm"
    );

    // After the outage: the new runs get their intents and are paid; the expired
    // ones cancel their intents and compensate.
    let payer = Payer::start(
        &app.db.url,
        &sandbox.base_url,
        "idempotency_key LIKE 'during-%'",
    );
    let rows = wait_all_finished(&app.db.url, Duration::from_secs(240)).await;
    println!(
        "outage: all finished {:.1} s after the provider came back: {rows:?}",
        (outage_started.elapsed() - OUTAGE).as_secs_f64()
    );
    payer.stop().await;
    let stats = sandbox.stats().await;
    let rows = check_invariants(&app.db.url, Some(&stats), &deployment.mail_dir()).await;
    assert_eq!(
        count_of(&rows, "completed") as usize,
        DURING,
        "runs started during the outage complete: {rows:?}"
    );
    assert_eq!(
        count_of(&rows, "compensated") as usize,
        EXPIRING,
        "{rows:?}"
    );
    assert_eq!(
        scalar(
            &mut conn,
            &format!(
                "SELECT count(*) FROM holds WHERE status = 'active' AND run_id IN ({expiring_ids})"
            )
        )
        .await,
        0,
        "expired holds released"
    );
    assert_eq!(
        stats["cancellations"].as_u64().unwrap() as usize,
        EXPIRING,
        "each expired intent cancelled once"
    );
    assert_eq!(
        stats["charges_by_run_id"].as_object().unwrap().len(),
        DURING
    );
    for w in &mut workers {
        assert_alive(w, "at the end");
    }
}
