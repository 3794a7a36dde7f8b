//! A `serve` process stopped by SIGTERM (a rolling restart in the middle of a
//! sale) makes the payment intents its first steps issued before it exits:
//! their buyers get their payment forms now, not when the intents' backstops
//! come due for the workers. No worker runs in these tests, so every intent
//! made is the stopped API's doing. And it answers its long polls at once,
//! instead of holding its stop for up to their 30 s.

use std::time::{Duration, Instant};

use boxoffice_models::users::Role;
use futures::future::join_all;
use serde_json::json;

use super::fault_support::{checkout, connect, scalar};
use crate::checkout_support::event_on_sale;
use crate::harness::TestApp;
use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::redis_url;

const BUYERS: usize = 12;
/// Each of the provider's answers takes this long, so the stop comes while
/// the intents are being made.
const PROVIDER_LATENCY_MS: u64 = 1_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_api_makes_the_intents_its_first_steps_issued() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    sandbox
        .configure(json!({ "latency_ms": PROVIDER_LATENCY_MS }))
        .await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyers = join_all((0..BUYERS).map(|_| app.create_user(&[Role::Participant]))).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(2500, 100)], 10).await;
    let tt = event.ticket_types[0];

    let deployment = Deployment::new(&app.db.url, &redis_url(), &app.redis_prefix)
        .env("BOXOFFICE_STRIPE_API_BASE", &sandbox.base_url);
    let mut api = BoxofficeProcess::start(&deployment, "serve").await;
    let url = api.base_url.clone().unwrap();

    let client = reqwest::Client::new();
    let answers = join_all(buyers.iter().enumerate().map(|(i, buyer)| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            checkout(
                &client,
                &url,
                buyer,
                event.event_id,
                tt,
                1,
                &format!("stop-{i}"),
            )
            .await
        }
    }))
    .await;
    for answer in &answers {
        let (status, body) = answer.as_ref().expect("an answer");
        assert_eq!(*status, 202, "{body}");
        assert!(body["expires_at"].is_string(), "held: {body}");
    }

    // Every seat is held and every intent issued: stop the API at once, with
    // the provider still working on the intents.
    let stopping = Instant::now();
    assert!(api.terminate().await, "the API did not stop cleanly");
    let stopped_in = stopping.elapsed();
    let mut conn = connect(&app.db.url).await;
    let waiting = scalar(
        &mut conn,
        "SELECT count(*) FROM workflow_runs WHERE status = 'waiting' AND step = 'awaiting_payment'",
    )
    .await;
    let backstops = scalar(
        &mut conn,
        "SELECT count(*) FROM outbox WHERE queue = 'run_effect'",
    )
    .await;
    let stats = sandbox.stats().await;
    println!(
        "api stop: stopped in {stopped_in:.1?} with {BUYERS} intents being made; after it: \
         {waiting} runs awaiting payment, {backstops} backstops left, {} intents made",
        stats["intents_created"]
    );
    assert!(
        stopped_in >= Duration::from_millis(PROVIDER_LATENCY_MS),
        "the API stopped before the provider answered"
    );
    assert_eq!(waiting, BUYERS as i64, "every buyer has a payment form");
    assert_eq!(backstops, 0, "every intent's backstop was deleted");
    assert_eq!(stats["intents_created"], BUYERS, "{stats}");
    assert!(
        api.logs()
            .contains("the first steps' provider calls are done"),
        "{}",
        api.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_api_answers_its_long_polls_at_once() {
    long_poll_answered_at_stop(reqwest::Client::new()).await;
}

/// The same through a proxy that speaks HTTP/2 to the API: the stop closes
/// the connection only after its streams are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_api_answers_long_polls_on_an_http2_connection_at_once() {
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    long_poll_answered_at_stop(client).await;
}

/// A buyer's run waits for payment and the buyer long-polls it on `client`;
/// the API is stopped: the poll is answered 304 and the stop takes seconds,
/// not the poll's 30.
async fn long_poll_answered_at_stop(client: reqwest::Client) {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(2500, 10)], 10).await;
    let deployment = Deployment::new(&app.db.url, &redis_url(), &app.redis_prefix)
        .env("BOXOFFICE_STRIPE_API_BASE", &sandbox.base_url);
    let mut api = BoxofficeProcess::start(&deployment, "serve").await;
    let url = api.base_url.clone().unwrap();
    let (status, body) = checkout(
        &client,
        &url,
        &buyer,
        event.event_id,
        event.ticket_types[0],
        1,
        "poll",
    )
    .await
    .expect("an answer");
    assert_eq!(status, 202, "{body}");
    let run_id = body["run_id"].as_str().unwrap().to_owned();

    // The run waits for the buyer's payment: nothing will change it.
    let status_url = format!("{url}/v1/workflows/{run_id}");
    let started = Instant::now();
    let etag = loop {
        let r = client
            .get(&status_url)
            .header("authorization", buyer.bearer())
            .send()
            .await
            .unwrap();
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        let view: serde_json::Value = r.json().await.unwrap();
        if view["step"] == "awaiting_payment" {
            break etag;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let poll = tokio::spawn({
        let (client, token) = (client.clone(), buyer.bearer());
        async move {
            let asked = Instant::now();
            let r = client
                .get(format!("{status_url}?wait=30"))
                .header("authorization", token)
                .header("if-none-match", etag)
                .send()
                .await
                .expect("the long poll is answered");
            (r.status().as_u16(), asked.elapsed())
        }
    });
    // Long enough for the poll to be waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopping = Instant::now();
    assert!(api.terminate().await, "the API did not stop cleanly");
    let stopped_in = stopping.elapsed();
    let (answer, polled_for) = poll.await.unwrap();
    println!(
        "api stop: a long poll of 30 s answered {answer} after {polled_for:.1?}; the API stopped in {stopped_in:.1?}"
    );
    assert_eq!(answer, 304, "the poll is told nothing changed");
    assert!(
        stopped_in < Duration::from_secs(5),
        "the long poll held the stop for {stopped_in:?}"
    );
}
