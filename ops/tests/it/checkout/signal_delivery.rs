//! The API process that stores a webhook's signal delivers it to its run
//! itself, right after the commit (`EngineSignalDelivery`): a paid checkout
//! completes without a worker, and the signal's delivery message, written
//! due later as the backstop, is deleted by the step that took the signal.
//! An API that leaves signals to the workers (as one that died after storing
//! it does) writes that message due at once, and a worker delivers it.
//!
//! The sandbox's webhooks go to `app`; `api` is a second API on the same
//! database that creates the payment intents (the sandbox needs an address
//! to post to before such an API can be built). No worker runs until a test
//! starts one.

use std::time::Duration;

use boxoffice_models::users::Role;
use serde_json::Value;
use uuid::Uuid;

use super::fixtures::{
    awaiting_payment, count, counters, event_on_sale, is_finished, order, start, wait_for,
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

/// Delivery messages (`advance_run`) of a run; `due` adds a condition on
/// `available_at`.
fn advance_messages(run_id: &str, due: &str) -> String {
    format!(
        "SELECT 1 FROM outbox WHERE queue = 'advance_run' AND payload->>'run_id' = '{run_id}' {due}"
    )
}

fn pending_signals(run_id: &str) -> String {
    format!("SELECT 1 FROM workflow_signals WHERE run_id = '{run_id}' AND consumed_at IS NULL")
}

/// A checkout waiting for its payment.
struct Paying {
    run_id: String,
    intent: String,
    ticket_type: Uuid,
    buyer: TestUser,
}

/// Starts a checkout of two seats at 25.00 on `api` and waits for its
/// payment form.
async fn awaiting_a_payment(api: &TestApp) -> Paying {
    let organizer = api.create_user(&[Role::Organizer]).await;
    let buyer = api.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&api.db.url, organizer.id, &[(2500, 10)], 15).await;
    let r = start(
        &api.base_url,
        &api.client,
        &buyer,
        order(&event, 0, 2),
        None,
    )
    .await;
    assert_eq!(r.status(), 202);
    let answer: Value = r.json().await.unwrap();
    let run_id = answer["run_id"].as_str().unwrap().to_owned();
    let view = wait_for(
        api,
        &buyer,
        &run_id,
        Duration::from_secs(20),
        awaiting_payment,
    )
    .await;
    Paying {
        intent: view["payment"]["intent_id"].as_str().unwrap().to_owned(),
        run_id,
        ticket_type: event.ticket_types[0],
        buyer,
    }
}

#[tokio::test]
async fn the_api_that_stores_a_payment_completes_the_checkout_without_a_worker() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    let api = calling_api(&app, &sandbox).await;
    let Paying {
        run_id,
        intent,
        ticket_type,
        buyer,
    } = awaiting_a_payment(&api).await;

    sandbox.pay(&intent).await;
    // No worker runs: only the API that stored the payment can complete it,
    // and well before the backstop's grace (20 s) would hand it to a worker.
    let done = wait_for(&api, &buyer, &run_id, Duration::from_secs(10), is_finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["ticket_ids"].as_array().unwrap().len(), 2, "{done}");
    assert_eq!(counters(&api.db.url, ticket_type).await, (10, 2, 0));
    // The signal was taken, and its backstop (due 20 s after the webhook)
    // went with the step that took it. What is left is the hold's timer,
    // due at the deadline, 15 minutes on.
    assert_eq!(count(&api.db.url, &pending_signals(&run_id)).await, 0);
    assert_eq!(
        count(
            &api.db.url,
            &advance_messages(&run_id, "AND available_at < now() + interval '1 minute'")
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &api.db.url,
            &advance_messages(&run_id, "AND available_at > now() + interval '10 minutes'")
        )
        .await,
        1
    );
    // The confirmation is queued for the mailer, once.
    assert_eq!(
        count(
            &api.db.url,
            "SELECT 1 FROM notifications WHERE kind = 'booking_confirmation'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_signal_left_to_the_workers_is_due_at_once_and_a_worker_delivers_it() {
    let app = TestApp::builder()
        .leaving_signals_to_workers()
        .spawn()
        .await;
    let sandbox = app.sandbox().await;
    let api = calling_api(&app, &sandbox).await;
    let Paying {
        run_id,
        intent,
        ticket_type,
        buyer,
    } = awaiting_a_payment(&api).await;

    sandbox.pay(&intent).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(&api.db.url, &pending_signals(&run_id)).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the webhook never reached the API"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Stored, with its delivery message due now, and nobody delivered it.
    assert_eq!(
        count(
            &api.db.url,
            &advance_messages(&run_id, "AND available_at <= now()")
        )
        .await,
        1
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let view = wait_for(&api, &buyer, &run_id, Duration::from_secs(5), |_| true).await;
    assert_eq!(view["status"], "waiting", "{view}");

    app.start_workers(&sandbox.base_url);
    let done = wait_for(&api, &buyer, &run_id, Duration::from_secs(20), is_finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(counters(&api.db.url, ticket_type).await, (10, 2, 0));
    assert_eq!(count(&api.db.url, &pending_signals(&run_id)).await, 0);
}
