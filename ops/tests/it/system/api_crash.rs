//! Fault 2: an API process is `kill -9`ed while checkout requests are in flight.
//! No run is half-created or half-stepped: a run is created with its start
//! message (due later: the API takes the first step itself), and its first
//! step either committed (a free order completes in it) or left the run at
//! its start with that message. The client retrying with the same
//! `Idempotency-Key` on the surviving API gets one run per key; the retry
//! takes a first step the crash left behind, and every run finishes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use boxoffice_models::users::Role;
use futures::future::join_all;

use super::fault_support::{
    check_invariants, checkout, connect, count_of, scalar, wait_all_finished,
};
use crate::checkout_support::event_on_sale;
use crate::harness::TestApp;
use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::redis_url;

const REQUESTS: usize = 300;
/// Tries of each retried request while the survivor answers `503`.
const RETRIES: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_api_mid_request_then_retry_with_the_same_key() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    // One buyer per request: a participant has one open checkout per event.
    let buyers = join_all((0..REQUESTS).map(|_| app.create_user(&[Role::Participant]))).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 10_000)], 10).await;
    let tt = event.ticket_types[0];

    let deployment = Deployment::new(&app.db.url, &redis_url(), &app.redis_prefix)
        .env("BOXOFFICE_RATE_LIMIT_PER_IP", "100000")
        .env("BOXOFFICE_RATE_LIMIT_PER_USER", "100000")
        .env("BOXOFFICE_SCHEDULE_SWEEP_RUNS", "* * * * * *");
    let mut doomed = BoxofficeProcess::start(&deployment, "serve").await;
    let survivor = BoxofficeProcess::start(&deployment, "serve").await;
    let doomed_url = doomed.base_url.clone().unwrap();
    let survivor_url = survivor.base_url.clone().unwrap();

    // No workers yet: whatever the crash left is exactly what the API did.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(400)
        .build()
        .unwrap();
    let in_flight = join_all((0..REQUESTS).map(|i| {
        let (client, url, buyer) = (
            client.clone(),
            doomed_url.clone(),
            &buyers[i % buyers.len()],
        );
        async move {
            checkout(
                &client,
                &url,
                buyer,
                event.event_id,
                tt,
                1,
                &format!("key-{i}"),
            )
            .await
        }
    }));
    let killer = async {
        // Let the first requests land, then pull the plug.
        let mut conn = connect(&app.db.url).await;
        let started = Instant::now();
        while scalar(&mut conn, "SELECT count(*) FROM workflow_runs").await < 20 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no run was created"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        doomed.kill().await.expect("kill -9 the API");
    };
    let (results, ()) = tokio::join!(in_flight, killer);
    let mut first_answer: HashMap<String, String> = HashMap::new();
    let mut failed = 0;
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok((202, body)) => {
                first_answer.insert(
                    format!("key-{i}"),
                    body["run_id"].as_str().unwrap().to_owned(),
                );
            }
            _ => failed += 1,
        }
    }
    let mut conn = connect(&app.db.url).await;
    let runs = scalar(&mut conn, "SELECT count(*) FROM workflow_runs").await;
    println!(
        "api crash: of {REQUESTS} requests {} answered 202, {failed} lost with the process; {runs} runs in the database",
        first_answer.len()
    );
    assert!(failed > 0, "the crash hit requests in flight");
    // A run the crash left at its start has the message that starts it.
    let orphans = scalar(
        &mut conn,
        "SELECT count(*) FROM workflow_runs r WHERE r.step = 'start' AND NOT EXISTS
           (SELECT 1 FROM outbox o WHERE o.queue = 'advance_run' AND o.payload->>'run_id' = r.id::text)",
    )
    .await;
    assert_eq!(
        orphans, 0,
        "runs at their start without their start message"
    );
    // Every other run's first step committed whole: the free order completed.
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT count(*) FROM workflow_runs WHERE step <> 'start' AND status <> 'completed'"
        )
        .await,
        0,
        "a first step was cut in half"
    );
    let left_at_start = scalar(
        &mut conn,
        "SELECT count(*) FROM workflow_runs WHERE step = 'start'",
    )
    .await;
    println!("api crash: {left_at_start} runs left at their start by the crash");

    // The client retries every request with its key on the surviving API,
    // and again after a `503` (retry shortly), as a client does: 300 requests
    // at once may wait past the pool's limit on a loaded machine.
    let unavailable = AtomicUsize::new(0);
    let retries = join_all((0..REQUESTS).map(|i| {
        let (client, url, buyer) = (
            client.clone(),
            survivor_url.clone(),
            &buyers[i % buyers.len()],
        );
        let unavailable = &unavailable;
        async move {
            let mut tries = 1;
            loop {
                let answer = checkout(
                    &client,
                    &url,
                    buyer,
                    event.event_id,
                    tt,
                    1,
                    &format!("key-{i}"),
                )
                .await;
                if tries < RETRIES && matches!(answer, Ok((503, _))) {
                    unavailable.fetch_add(1, Ordering::Relaxed);
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                break (i, answer);
            }
        }
    }))
    .await;
    println!(
        "api crash: the survivor answered 503 (retry shortly) {} times to the retries",
        unavailable.load(Ordering::Relaxed)
    );
    for (i, r) in retries {
        let (status, body) = r.unwrap();
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["status"], "completed", "{body}");
        if let Some(first) = first_answer.get(&format!("key-{i}")) {
            assert_eq!(
                body["run_id"].as_str().unwrap(),
                first,
                "the same key gives the same run"
            );
        }
    }
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM workflow_runs").await,
        REQUESTS as i64,
        "one run per key"
    );
    // Still no worker: the retries took the first steps the crash left.
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT count(*) FROM workflow_runs WHERE status = 'completed'"
        )
        .await,
        REQUESTS as i64,
        "every run completed by its answer"
    );

    let worker = BoxofficeProcess::start(&deployment, "work").await;
    let rows = wait_all_finished(&app.db.url, Duration::from_secs(120)).await;
    assert_eq!(count_of(&rows, "completed"), REQUESTS as i64, "{rows:?}");
    check_invariants(&app.db.url, None, &deployment.mail_dir()).await;
    assert!(!worker.logs().contains("too many results"));
}
