//! An API process that has the payment provider creates a paid checkout's
//! payment intent itself, right after the answer that held the seats
//! (`EngineFirstSteps::calling`): no worker runs in these tests until one is
//! started, so every intent made before is the API's doing. The webhooks go to
//! a second API on the same database, as the sandbox needs its address first.

use std::time::{Duration, Instant};

use boxoffice_api::starts_in_flight::FLOOD;
use boxoffice_models::users::Role;
use boxoffice_ops::first_steps::DECISIONS_FIRST_LIMIT;
use serde_json::{Value, json};

use super::fixtures::{
    SaleEvent, count, counters, event_on_sale, order, start, start_all, wait_for,
};
use crate::harness::TestApp;
use crate::harness::sandbox::TestSandbox;
use crate::harness::users::TestUser;

/// An API that creates intents at `sandbox`, sharing `app`'s database.
async fn calling_api(app: &TestApp, sandbox: &TestSandbox) -> TestApp {
    TestApp::builder()
        .replica_of(app)
        .first_steps_calling(&sandbox.base_url)
        .spawn()
        .await
}

/// [`calling_api`], a buyer, and an event of ten seats at 25.00 on sale.
async fn api_with_a_buyer(app: &TestApp, sandbox: &TestSandbox) -> (TestApp, TestUser, SaleEvent) {
    let api = calling_api(app, sandbox).await;
    let organizer = api.create_user(&[Role::Organizer]).await;
    let buyer = api.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&api.db.url, organizer.id, &[(2500, 10)], 15).await;
    (api, buyer, event)
}

/// Starts `buyer`'s checkout of two seats, answered held; its run's id.
async fn start_held(api: &TestApp, buyer: &TestUser, event: &SaleEvent) -> String {
    let r = start(&api.base_url, &api.client, buyer, order(event, 0, 2), None).await;
    assert_eq!(r.status(), 202);
    let answer: Value = r.json().await.unwrap();
    assert!(answer["expires_at"].is_string(), "{answer}");
    answer["run_id"].as_str().unwrap().to_owned()
}

/// `run_effect` messages of a run: the intent's backstop, or a retry.
fn effect_messages(run_id: &str) -> String {
    format!("SELECT 1 FROM outbox WHERE queue = 'run_effect' AND payload->>'run_id' = '{run_id}'")
}

#[tokio::test]
async fn a_flood_of_paid_checkouts_gets_its_intents_from_the_api_once_each() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    let api = calling_api(&app, &sandbox).await;
    let organizer = api.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&api.db.url, organizer.id, &[(2500, 10)], 15).await;
    let mut buyers = Vec::new();
    for _ in 0..30 {
        buyers.push(api.create_user(&[Role::Participant]).await);
    }

    // Thirty buyers at once for ten seats; no worker runs.
    let answers = start_all(&api, &buyers, &event).await;
    let winners: Vec<(usize, String)> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| a["expires_at"].is_string())
        .map(|(i, a)| (i, a["run_id"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(winners.len(), 10, "{answers:?}");

    // Each winner's payment form comes without a worker.
    for (i, run_id) in &winners {
        let view = wait_for(&api, &buyers[*i], run_id, Duration::from_secs(20), |v| {
            v["status"] == "waiting"
        })
        .await;
        assert_eq!(view["step"], "awaiting_payment", "{view}");
        assert!(view["payment"]["client_secret"].is_string(), "{view}");
        // Its backstop was deleted once the intent was made.
        assert_eq!(count(&api.db.url, &effect_messages(run_id)).await, 0);
    }
    let stats = sandbox.stats().await;
    println!(
        "first intents: {} intents for {} winners, {} API calls",
        stats["intents_created"],
        winners.len(),
        stats["api_calls"]
    );
    assert_eq!(stats["intents_created"], 10, "{stats}");
    assert_eq!(
        counters(&api.db.url, event.ticket_types[0]).await,
        (10, 0, 10)
    );
    // Every intent carries its run's idempotency key, each used once.
    let keys = stats["intents_by_idempotency_key"].as_object().unwrap();
    for (_, run_id) in &winners {
        assert_eq!(
            keys[&format!("{run_id}:create_payment_intent")],
            1,
            "{stats}"
        );
    }
}

/// While more checkout starts are in flight than one batch writes, the
/// API's payment intents wait (every buyer's decision first), but never
/// longer than `DECISIONS_FIRST_LIMIT` after the step that issued them.
#[tokio::test]
async fn a_payment_intent_waits_for_a_flood_of_starts_no_longer_than_its_limit() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    let (api, buyer, event) = api_with_a_buyer(&app, &sandbox).await;
    // A flood that does not pass: more starts in flight than a batch writes,
    // counted where the API's batches count theirs.
    let in_flight = api.starts_in_flight();
    let _flood: Vec<_> = (0..=FLOOD).map(|_| in_flight.enter()).collect();

    let posted = Instant::now();
    // The buyer's decision is not held up.
    let run_id = start_held(&api, &buyer, &event).await;

    // The step issued the intent after `posted`: it waits until at least
    // `posted + DECISIONS_FIRST_LIMIT`.
    let almost = (posted + DECISIONS_FIRST_LIMIT).saturating_duration_since(Instant::now());
    tokio::time::sleep(almost.saturating_sub(Duration::from_millis(100))).await;
    assert_eq!(
        sandbox.stats().await["intents_created"],
        0,
        "the intent waited for the flood"
    );
    assert_eq!(count(&api.db.url, &effect_messages(&run_id)).await, 1);

    // Then it is made, flood or not, and once.
    let view = wait_for(&api, &buyer, &run_id, Duration::from_secs(20), |v| {
        v["status"] == "waiting"
    })
    .await;
    assert_eq!(view["step"], "awaiting_payment", "{view}");
    assert!(view["payment"]["client_secret"].is_string(), "{view}");
    assert!(posted.elapsed() >= DECISIONS_FIRST_LIMIT);
    assert_eq!(sandbox.stats().await["intents_created"], 1);
    assert_eq!(count(&api.db.url, &effect_messages(&run_id)).await, 0);
}

#[tokio::test]
async fn an_intent_the_provider_fails_to_make_after_the_answer_is_retried_by_the_workers() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    let (api, buyer, event) = api_with_a_buyer(&app, &sandbox).await;
    sandbox
        .configure(json!({ "outage": true, "outage_mode": "error" }))
        .await;

    let run_id = start_held(&api, &buyer, &event).await;

    // The API's attempt failed: the run counts it, and its next attempt waits
    // in the outbox for a worker. The backstop is dropped after the retry is
    // scheduled, in a statement of its own: waited for too.
    let failed_attempt = format!(
        "SELECT 1 FROM workflow_steps WHERE run_id = '{run_id}' \
         AND outcome = 'retrying' AND attempt = 1"
    );
    let retry = format!("{} AND payload->>'attempt' = '2'", effect_messages(&run_id));
    let started = Instant::now();
    while count(&api.db.url, &failed_attempt).await == 0
        || count(&api.db.url, &effect_messages(&run_id)).await != 1
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the API's attempt was not recorded, or its backstop not dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&api.db.url, &retry).await, 1);
    assert_eq!(count(&api.db.url, &effect_messages(&run_id)).await, 1);
    assert_eq!(sandbox.stats().await["intents_created"], 0);

    // The provider is back: a worker makes the intent, once.
    sandbox.configure(json!({ "outage": false })).await;
    app.start_workers(&sandbox.base_url);
    let view = wait_for(&api, &buyer, &run_id, Duration::from_secs(20), |v| {
        v["status"] == "waiting"
    })
    .await;
    assert!(view["payment"]["client_secret"].is_string(), "{view}");
    assert_eq!(sandbox.stats().await["intents_created"], 1);
    assert_eq!(
        counters(&api.db.url, event.ticket_types[0]).await,
        (10, 0, 2)
    );
}
