//! What the provider says is checked and kept in its place: a payment of
//! another amount or currency than the order's confirms nothing and waits for
//! an operator; the provider's own error text reaches operators, never the
//! participant.

use std::time::Duration;

use boxoffice_api::webhooks::stripe_signature::sign;
use boxoffice_models::users::Role;
use boxoffice_models::workflow_runs;
use boxoffice_workers::engine::executor::money_at_stake;
use boxoffice_workers::engine::{Dispatch, EngineInput, Trigger, advance};
use serde_json::{Value, json};
use uuid::Uuid;

use super::fixtures::{
    count, counters, event_on_sale, order, start, started_run, wait_for, waiting_checkout,
};
use crate::harness::users::TestUser;
use crate::harness::{TEST_WEBHOOK_SECRET, TestApp};

/// The provider reports `intent` of `run_id` succeeded for `amount` `currency`.
async fn succeeded_webhook(
    app: &TestApp,
    event_id: &str,
    intent: &str,
    run_id: &str,
    amount: i64,
    currency: &str,
) {
    let body = json!({
        "id": event_id,
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": chrono::Utc::now().timestamp(),
        "data": {"object": {
            "id": intent, "object": "payment_intent", "status": "succeeded",
            "amount": amount, "amount_received": amount, "currency": currency,
            "metadata": {"run_id": run_id},
        }},
    })
    .to_string();
    let r = app
        .client
        .post(app.url("/v1/webhooks/stripe"))
        .header("content-type", "application/json")
        .header(
            "stripe-signature",
            sign(
                TEST_WEBHOOK_SECRET,
                chrono::Utc::now().timestamp(),
                body.as_bytes(),
            ),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn ops_view(app: &TestApp, admin: &TestUser, run_id: &str) -> Value {
    let r = app
        .client
        .get(app.url(&format!("/v1/ops/runs/{run_id}")))
        .header("authorization", admin.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_payment_of_another_amount_or_currency_confirms_nothing_and_parks_the_run() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let admin = app.create_user(&[Role::Admin]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(250_000, 10)], 15).await;

    // 2,500 EUR ordered; the provider reports 1 USD, then 2,500 USD.
    for (i, (amount, currency)) in [(1, "usd"), (250_000, "usd")].into_iter().enumerate() {
        let buyer = app.create_user(&[Role::Participant]).await;
        let (run_id, intent) =
            waiting_checkout(&app, &buyer, order(&event, 0, 1), &format!("mismatch-{i}")).await;
        assert_eq!(
            counters(&app.db.url, event.ticket_types[0]).await,
            (10, 0, 1)
        );
        succeeded_webhook(
            &app,
            &format!("evt_mismatch_{i}"),
            &intent,
            &run_id,
            amount,
            currency,
        )
        .await;
        let parked = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), |v| {
            v["status"] == "failed"
        })
        .await;
        assert_eq!(parked["error"]["code"], "payment_mismatch", "{parked}");
        assert!(parked["booking_id"].is_null(), "{parked}");
        assert!(
            parked["ticket_ids"].as_array().unwrap().is_empty(),
            "{parked}"
        );
        assert!(parked["payment"].is_null(), "nothing left to pay: {parked}");
        // Nothing sold, the seat let go.
        assert_eq!(
            counters(&app.db.url, event.ticket_types[0]).await,
            (10, 0, 0)
        );
        assert_eq!(
            count(
                &app.db.url,
                &format!("SELECT 1 FROM bookings WHERE run_id = '{run_id}'")
            )
            .await,
            0
        );

        // The operator sees what arrived, and the run still names the money.
        let shown = ops_view(&app, &admin, &run_id).await;
        assert_eq!(shown["status"], "failed");
        assert_eq!(
            shown["state"]["mismatched_payment"]["amount_minor"], amount,
            "{shown}"
        );
        assert_eq!(
            shown["state"]["mismatched_payment"]["currency"],
            currency.to_ascii_uppercase(),
            "{shown}"
        );
        let mut conn = app.pool().get().await.unwrap();
        let run = workflow_runs::find(&mut conn, run_id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let at_stake = money_at_stake(&run).unwrap().expect("money at stake");
        assert!(at_stake.contains(&intent), "{at_stake}");
    }
    assert_eq!(count(&app.db.url, "SELECT 1 FROM tickets").await, 0);
}

#[tokio::test]
async fn the_providers_error_text_is_shown_to_operators_and_not_to_the_participant() {
    const LEAKY: &str = "payment provider refused the request: Invalid API Key provided: \
                         Authorization was 'Bearer sk_live_51Hx9LEAKEDKEY'";
    let app = TestApp::spawn().await;
    // No workers: the test feeds the run the provider's final failure itself,
    // as the effect job does.
    let organizer = app.create_user(&[Role::Organizer]).await;
    let admin = app.create_user(&[Role::Admin]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 10)], 15).await;
    let run_id = started_run(
        start(
            &app.base_url,
            &app.client,
            &buyer,
            order(&event, 0, 1),
            Some("leak-1"),
        )
        .await,
    )
    .await;
    let id: Uuid = run_id.parse().unwrap();
    let signer = app.ticket_signer();
    let creating = advance(app.pool(), &signer, id, Trigger::Poke, Dispatch::Queue)
        .await
        .unwrap();
    assert_eq!(creating.status.as_deref(), Some("running"));
    let failed = EngineInput::RemoteFailed {
        key: "create_payment_intent".into(),
        error: "unauthorized".into(),
        detail: LEAKY.into(),
    };
    let done = advance(
        app.pool(),
        &signer,
        id,
        Trigger::Input(failed),
        Dispatch::Queue,
    )
    .await
    .unwrap();
    assert_eq!(done.status.as_deref(), Some("compensated"));

    let r = app
        .client
        .get(app.url(&format!("/v1/workflows/{run_id}")))
        .header("authorization", buyer.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let view: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(view["error"]["code"], "payment_unavailable", "{view}");
    assert!(!view["error"]["detail"].as_str().unwrap().is_empty());
    for secret in ["sk_live", "Bearer", "Invalid API Key"] {
        assert!(
            !text.contains(secret),
            "the participant sees {secret:?}: {text}"
        );
    }

    let shown = ops_view(&app, &admin, &run_id).await;
    // The workflow keeps the provider's stable code; its words are in the history.
    assert_eq!(
        shown["state"]["error"]["operator_detail"], "unauthorized",
        "{shown}"
    );
    let history = shown["steps"].as_array().unwrap();
    assert!(
        history
            .iter()
            .any(|s| s["input"] == "remote_failed:create_payment_intent" && s["error"] == LEAKY),
        "the run's history keeps the provider's words: {shown}"
    );
}
