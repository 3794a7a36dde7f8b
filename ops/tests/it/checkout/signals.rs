//! Payment webhooks as the engine sees them: duplicated, out of order, early
//! (before the run waits for them), and for intents it does not know.

use std::sync::Arc;
use std::time::Duration;

use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::users::Role;
use boxoffice_models::workflow_signals::{self, NewSignal, Recorded};
use boxoffice_workers::engine::{Advanced, Dispatch, EngineInput, Trigger, advance};
use boxoffice_workflows::payments::PaymentOutcome;
use serde_json::{Value, json};
use uuid::Uuid;

use super::fixtures::{count, counters, event_on_sale, is_finished, order, start, wait_for};
use crate::harness::TestApp;

#[tokio::test]
async fn duplicated_and_reordered_webhooks_have_one_effect() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    // Every webhook five times, shuffled and delayed.
    sandbox
        .configure(json!({ "duplicate_deliveries": 5, "out_of_order": true }))
        .await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(2000, 5)], 15).await;

    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 1),
        None,
    )
    .await;
    let run_id = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), |v| {
        v["status"] == "waiting"
    })
    .await;
    let intent = view["payment"]["intent_id"].as_str().unwrap().to_owned();
    sandbox.pay(&intent).await;
    let done = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), is_finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    // A decline of the same intent delivered after the success (a provider that
    // reorders its events): too late to matter.
    let mut conn = app.raw_conn().await;
    let stale = NewSignal {
        run_id: run_id.parse().unwrap(),
        name: "payment_failed".into(),
        dedupe_key: "stripe:evt_stale_decline".into(),
        payload: json!({ "intent_id": intent }),
    };
    assert_eq!(
        workflow_signals::record(&mut conn, stale).await.unwrap(),
        Recorded::New
    );
    // Let every copy arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;

    assert_eq!(
        count(&app.db.url, &format!("SELECT 1 FROM workflow_signals WHERE run_id = '{run_id}' AND name = 'payment_succeeded'")).await,
        1,
        "five deliveries, one signal"
    );
    let after: Value = app
        .client
        .get(app.url(&format!("/v1/workflows/{run_id}")))
        .header("authorization", buyer.bearer())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        after["status"], "completed",
        "the late decline changed nothing: {after}"
    );
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (5, 1, 0)
    );
    assert_eq!(count(&app.db.url, "SELECT 1 FROM tickets").await, 1);
    assert_eq!(count(&app.db.url, "SELECT 1 FROM notifications").await, 1);
}

/// The payment webhook overtakes our own step: it arrives while the run is
/// still creating the intent. It is kept, and consumed when the run waits.
#[tokio::test]
async fn a_signal_that_arrives_before_the_run_waits_is_kept_and_used() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(2000, 5)], 15).await;
    // No workers: this test drives the engine itself, step by step.
    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 2),
        None,
    )
    .await;
    let run_id: Uuid = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let signer = Arc::new(app.ticket_signer());

    let started = advance(app.pool(), &signer, run_id, Trigger::Poke, Dispatch::Queue)
        .await
        .unwrap();
    assert_eq!(
        started.status.as_deref(),
        Some("running"),
        "holding done, creating the intent"
    );

    let mut conn = app.raw_conn().await;
    let early = NewSignal {
        run_id,
        name: "payment_succeeded".into(),
        dedupe_key: "stripe:evt_early".into(),
        payload: json!({ "intent_id": "pi_early", "amount_minor": 4000, "currency": "EUR" }),
    };
    assert_eq!(
        workflow_signals::record(&mut conn, early.clone())
            .await
            .unwrap(),
        Recorded::New
    );
    assert_eq!(
        workflow_signals::record(&mut conn, early).await.unwrap(),
        Recorded::Duplicate
    );
    // A poke while the run is busy does not consume it.
    advance(app.pool(), &signer, run_id, Trigger::Poke, Dispatch::Queue)
        .await
        .unwrap();
    assert_eq!(
        count(
            &app.db.url,
            "SELECT 1 FROM workflow_signals WHERE consumed_at IS NULL"
        )
        .await,
        1
    );

    let done = intent_created(&app, &signer, run_id, "pi_early").await;
    assert_eq!(
        done.status.as_deref(),
        Some("completed"),
        "the kept signal completed the run"
    );
    assert_eq!(
        count(
            &app.db.url,
            "SELECT 1 FROM workflow_signals WHERE consumed_at IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (5, 2, 0)
    );
    assert_eq!(count(&app.db.url, "SELECT 1 FROM tickets").await, 2);
}

#[tokio::test]
async fn a_signal_for_an_unknown_run_or_intent_changes_nothing() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(2000, 5)], 15).await;
    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 1),
        None,
    )
    .await;
    let run_id: Uuid = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let signer = Arc::new(app.ticket_signer());
    advance(app.pool(), &signer, run_id, Trigger::Poke, Dispatch::Queue)
        .await
        .unwrap();
    let waiting = intent_created(&app, &signer, run_id, "pi_real").await;
    assert_eq!(waiting.status.as_deref(), Some("waiting"));

    let mut conn = app.raw_conn().await;
    let unknown_run = NewSignal {
        run_id: Uuid::now_v7(),
        name: "payment_succeeded".into(),
        dedupe_key: "stripe:evt_nobody".into(),
        payload: json!({ "intent_id": "pi_real" }),
    };
    assert_eq!(
        workflow_signals::record(&mut conn, unknown_run)
            .await
            .unwrap(),
        Recorded::UnknownRun
    );
    let wrong_intent = NewSignal {
        run_id,
        name: "payment_succeeded".into(),
        dedupe_key: "stripe:evt_other".into(),
        payload: json!({ "intent_id": "pi_someone_else" }),
    };
    assert_eq!(
        workflow_signals::record(&mut conn, wrong_intent)
            .await
            .unwrap(),
        Recorded::New
    );
    let after = advance(app.pool(), &signer, run_id, Trigger::Poke, Dispatch::Queue)
        .await
        .unwrap();
    assert_eq!(
        after.status.as_deref(),
        Some("waiting"),
        "still waiting for its own payment"
    );
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (5, 0, 1)
    );
    assert_eq!(
        count(&app.db.url, "SELECT 1 FROM workflow_steps WHERE input = 'signal:payment_succeeded' AND outcome = 'ignored'").await,
        1
    );
}

/// A signal was stored but its delivery message was lost (Redis restarted
/// without its data after the relay moved it): the sweep delivers it.
#[tokio::test]
async fn a_signal_whose_delivery_message_was_lost_is_delivered_by_the_sweep() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(2000, 5)], 15).await;
    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 1),
        None,
    )
    .await;
    let run_id = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), |v| {
        v["status"] == "waiting"
    })
    .await;
    let intent = view["payment"]["intent_id"].as_str().unwrap();

    // The signal as the webhook stored it, older than the stalled threshold,
    // and no message left anywhere to deliver it.
    let mut conn = app.raw_conn().await;
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut conn,
        &format!(
            "INSERT INTO workflow_signals (run_id, name, dedupe_key, payload, received_at)
             VALUES ('{run_id}', 'payment_succeeded', 'stripe:evt_lost',
                     '{{\"intent_id\": \"{intent}\", \"amount_minor\": 2000, \"currency\": \"EUR\"}}',
                     now() - interval '2 minutes')"
        ),
    )
    .await
    .unwrap();
    let done = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), is_finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        count(
            &app.db.url,
            "SELECT 1 FROM workflow_signals WHERE consumed_at IS NULL"
        )
        .await,
        0
    );
}

/// Feeds the run the outcome of creating its payment intent, as `run_effect` does.
async fn intent_created(
    app: &TestApp,
    signer: &TicketSigner,
    run_id: Uuid,
    intent_id: &str,
) -> Advanced {
    let created = EngineInput::RemoteDone {
        key: "create_payment_intent".into(),
        outcome: serde_json::to_value(PaymentOutcome::IntentCreated {
            intent_id: intent_id.into(),
            client_secret: "secret".into(),
        })
        .unwrap(),
    };
    advance(
        app.pool(),
        signer,
        run_id,
        Trigger::Input(created),
        Dispatch::Queue,
    )
    .await
    .unwrap()
}
