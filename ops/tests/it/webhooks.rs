//! `POST /v1/webhooks/stripe` on the real API: signature rules, deduplication,
//! and what is stored (a signal and its outbox message, in one transaction).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use boxoffice_api::webhooks::stripe_signature::sign;
use boxoffice_ops::sandbox::{self, SandboxConfig};
use boxoffice_workers::adapters::payments::{
    CreateIntent, CreateRefund, PaymentProvider, RefundReason, RefundStatus, StripeClient,
    StripeConfig,
};
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::harness::{TestApp, assert_problem};

const SECRET: &str = "whsec_api_test_current";
const OLD_SECRET: &str = "whsec_api_test_previous";

async fn app_with_secrets(secrets: &[&str]) -> TestApp {
    let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
    TestApp::builder()
        .config(move |c| c.stripe_webhook_secrets = secrets)
        .spawn()
        .await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn event(id: &str, kind: &str, object: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "type": kind,
        "created": now(),
        "livemode": false,
        "data": {"object": object},
    })
    .to_string()
}

fn intent_object(intent_id: &str, run_id: &str) -> Value {
    json!({
        "id": intent_id,
        "object": "payment_intent",
        "amount": 2500,
        "currency": "eur",
        "status": "succeeded",
        "metadata": {"run_id": run_id},
    })
}

async fn post(app: &TestApp, body: &str, signature: Option<String>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/v1/webhooks/stripe"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    request.send().await.expect("webhook request")
}

async fn post_signed(app: &TestApp, body: &str) -> reqwest::Response {
    post(app, body, Some(sign(SECRET, now(), body.as_bytes()))).await
}

/// The acknowledgement's `outcome`, after checking it is a 200.
async fn outcome(response: reqwest::Response) -> String {
    let status = response.status();
    let body: Value = response.json().await.expect("JSON acknowledgement");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["received"], true, "{body}");
    body["outcome"].as_str().expect("an outcome").to_owned()
}

async fn insert_run(app: &TestApp) -> Uuid {
    let id = Uuid::now_v7();
    let mut conn = app.raw_conn().await;
    diesel::sql_query(
        "INSERT INTO workflow_runs (id, kind, status, step, state) VALUES ($1, 'checkout', 'waiting', 'awaiting_payment', '{}')",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .execute(&mut conn)
    .await
    .expect("inserting a run");
    id
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// (signals of any run, outbox messages of any queue): what a webhook may have written.
async fn stored(app: &TestApp) -> (i64, i64) {
    let mut conn = app.raw_conn().await;
    let signals: Count = diesel::sql_query("SELECT count(*) AS n FROM workflow_signals")
        .get_result(&mut conn)
        .await
        .expect("counting signals");
    let outbox: Count = diesel::sql_query("SELECT count(*) AS n FROM outbox")
        .get_result(&mut conn)
        .await
        .expect("counting outbox messages");
    (signals.n, outbox.n)
}

#[derive(diesel::QueryableByName, Debug)]
struct SignalRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    dedupe_key: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    payload: Value,
}

async fn signals_of(app: &TestApp, run_id: Uuid) -> Vec<SignalRow> {
    let mut conn = app.raw_conn().await;
    diesel::sql_query(
        "SELECT name, dedupe_key, payload FROM workflow_signals WHERE run_id = $1 ORDER BY id",
    )
    .bind::<diesel::sql_types::Uuid, _>(run_id)
    .load(&mut conn)
    .await
    .expect("reading signals")
}

async fn outbox_messages_for(app: &TestApp, run_id: Uuid) -> i64 {
    let mut conn = app.raw_conn().await;
    let count: Count =
        diesel::sql_query("SELECT count(*) AS n FROM outbox WHERE payload->>'run_id' = $1")
            .bind::<diesel::sql_types::Text, _>(run_id.to_string())
            .get_result(&mut conn)
            .await
            .expect("counting outbox messages");
    count.n
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_400_and_changes_nothing() {
    let app = app_with_secrets(&[SECRET]).await;
    let run = insert_run(&app).await;
    let body = event(
        "evt_bad",
        "payment_intent.succeeded",
        intent_object("pi_1", &run.to_string()),
    );

    let wrong_secret = sign("whsec_someone_else", now(), body.as_bytes());
    assert_problem(
        post(&app, &body, Some(wrong_secret)).await,
        400,
        "invalid_signature",
    )
    .await;
    assert_problem(post(&app, &body, None).await, 400, "invalid_signature").await;
    assert_problem(
        post(&app, &body, Some("t=abc,v1=zz".into())).await,
        400,
        "invalid_signature",
    )
    .await;
    // Signed, then changed on the way.
    let signature = sign(SECRET, now(), body.as_bytes());
    let tampered = body.replace("2500", "1");
    assert_problem(
        post(&app, &tampered, Some(signature)).await,
        400,
        "invalid_signature",
    )
    .await;

    assert_eq!(stored(&app).await, (0, 0));
}

#[tokio::test]
async fn a_stale_or_future_timestamp_is_400() {
    let app = app_with_secrets(&[SECRET]).await;
    let run = insert_run(&app).await;
    let body = event(
        "evt_stale",
        "payment_intent.succeeded",
        intent_object("pi_1", &run.to_string()),
    );
    // Well past the 300 s tolerance: the test's clock and the server's may
    // read different seconds.
    for t in [now() - 310, now() + 310] {
        let signature = sign(SECRET, t, body.as_bytes());
        let problem = assert_problem(
            post(&app, &body, Some(signature)).await,
            400,
            "invalid_signature",
        )
        .await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("timestamp")),
            "{problem}"
        );
    }
    assert_eq!(stored(&app).await, (0, 0));
    // Within the tolerance, the same event is accepted.
    let signature = sign(SECRET, now() - 290, body.as_bytes());
    assert_eq!(
        outcome(post(&app, &body, Some(signature)).await).await,
        "recorded"
    );
}

#[tokio::test]
async fn an_event_for_an_unknown_run_or_without_one_is_acknowledged_and_not_stored() {
    let app = app_with_secrets(&[SECRET]).await;
    let unknown = event(
        "evt_u1",
        "payment_intent.succeeded",
        intent_object("pi_1", &Uuid::now_v7().to_string()),
    );
    assert_eq!(
        outcome(post_signed(&app, &unknown).await).await,
        "unknown_run"
    );

    let no_metadata = event(
        "evt_u2",
        "payment_intent.succeeded",
        json!({"id": "pi_2", "amount": 1, "metadata": {}}),
    );
    assert_eq!(
        outcome(post_signed(&app, &no_metadata).await).await,
        "no_run"
    );
    let not_a_run = event(
        "evt_u3",
        "payment_intent.succeeded",
        intent_object("pi_3", "order-17"),
    );
    assert_eq!(outcome(post_signed(&app, &not_a_run).await).await, "no_run");

    assert_eq!(stored(&app).await, (0, 0));
}

#[tokio::test]
async fn a_valid_event_signals_its_run_once_with_one_outbox_message() {
    let app = app_with_secrets(&[SECRET]).await;
    let run = insert_run(&app).await;
    let body = event(
        "evt_ok_1",
        "payment_intent.succeeded",
        intent_object("pi_ok", &run.to_string()),
    );
    assert_eq!(outcome(post_signed(&app, &body).await).await, "recorded");

    let signals = signals_of(&app, run).await;
    assert_eq!(signals.len(), 1);
    assert_eq!(signals[0].name, "payment_succeeded");
    assert_eq!(signals[0].dedupe_key, "stripe:evt_ok_1");
    assert_eq!(signals[0].payload["intent_id"], "pi_ok");
    assert_eq!(signals[0].payload["amount_minor"], 2500);
    assert_eq!(signals[0].payload["currency"], "EUR");
    assert!(signals[0].payload["event_created"].is_i64());
    assert_eq!(outbox_messages_for(&app, run).await, 1);
}

#[tokio::test]
async fn the_same_event_five_times_has_one_effect() {
    let app = app_with_secrets(&[SECRET]).await;
    let run = insert_run(&app).await;
    let body = event(
        "evt_dup",
        "payment_intent.succeeded",
        intent_object("pi_dup", &run.to_string()),
    );
    // Concurrently, as a provider retrying a slow endpoint would send them.
    let responses = futures::future::join_all((0..5).map(|_| post_signed(&app, &body))).await;
    let mut outcomes = Vec::new();
    for response in responses {
        outcomes.push(outcome(response).await);
    }
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate",
            "recorded"
        ]
    );
    assert_eq!(signals_of(&app, run).await.len(), 1);
    assert_eq!(outbox_messages_for(&app, run).await, 1);
    assert_eq!(stored(&app).await, (1, 1));
}

#[tokio::test]
async fn failures_become_their_own_signals_and_a_bare_charge_refunded_names_no_run() {
    let app = app_with_secrets(&[SECRET]).await;
    let run = insert_run(&app).await;
    let mut declined = intent_object("pi_f", &run.to_string());
    declined["status"] = json!("requires_payment_method");
    declined["last_payment_error"] = json!({"message": "Your card was declined."});
    let failed = event("evt_f", "payment_intent.payment_failed", declined);
    assert_eq!(outcome(post_signed(&app, &failed).await).await, "recorded");
    let charge = json!({
        "id": "ch_1", "object": "charge", "payment_intent": "pi_f", "amount": 2500,
        "amount_refunded": 700, "currency": "eur", "metadata": {"run_id": run.to_string()},
    });
    // The charge's run_id is the checkout's; without its refunds listed the
    // event names no refund, so no run hears of it.
    let refunded = event("evt_r", "charge.refunded", charge);
    assert_eq!(outcome(post_signed(&app, &refunded).await).await, "no_run");

    let signals = signals_of(&app, run).await;
    let names: Vec<&str> = signals.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["payment_failed"]);
    assert_eq!(
        signals[0].payload["failure_message"],
        "Your card was declined."
    );
    assert_eq!(outbox_messages_for(&app, run).await, 1);
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged_and_ignored() {
    let app = app_with_secrets(&[SECRET]).await;
    let run = insert_run(&app).await;
    let body = event(
        "evt_other",
        "customer.created",
        json!({"id": "cus_1", "metadata": {"run_id": run.to_string()}}),
    );
    assert_eq!(outcome(post_signed(&app, &body).await).await, "ignored");
    assert_eq!(stored(&app).await, (0, 0));

    // Signed but not an event at all: refused, and still nothing stored.
    let garbage = "[1, 2, 3]";
    assert_problem(post_signed(&app, garbage).await, 400, "malformed_event").await;
    assert_eq!(stored(&app).await, (0, 0));
}

#[tokio::test]
async fn during_a_rotation_either_secret_is_accepted() {
    let app = app_with_secrets(&[OLD_SECRET, SECRET]).await;
    let run = insert_run(&app).await;
    let first = event(
        "evt_rot_1",
        "payment_intent.payment_failed",
        intent_object("pi_rot", &run.to_string()),
    );
    let signed_with_second = sign(SECRET, now(), first.as_bytes());
    assert_eq!(
        outcome(post(&app, &first, Some(signed_with_second)).await).await,
        "recorded"
    );
    let second = event(
        "evt_rot_2",
        "payment_intent.succeeded",
        intent_object("pi_rot", &run.to_string()),
    );
    let signed_with_first = sign(OLD_SECRET, now(), second.as_bytes());
    assert_eq!(
        outcome(post(&app, &second, Some(signed_with_first)).await).await,
        "recorded"
    );
    assert_eq!(signals_of(&app, run).await.len(), 2);

    // An API that knows only the new secret refuses the old one.
    let current_only = app_with_secrets(&[SECRET]).await;
    let third = event(
        "evt_rot_3",
        "payment_intent.succeeded",
        intent_object("pi_rot", &run.to_string()),
    );
    let old = sign(OLD_SECRET, now(), third.as_bytes());
    assert_problem(
        post(&current_only, &third, Some(old)).await,
        400,
        "invalid_signature",
    )
    .await;
}

#[tokio::test]
async fn the_sandbox_pays_and_its_webhook_signals_the_run() {
    let app = app_with_secrets(&[SECRET]).await;
    let run = insert_run(&app).await;
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the sandbox");
    let config =
        SandboxConfig::new(app.url("/v1/webhooks/stripe"), SECRET).with_secret_key("sk_test_e2e");
    let provider = sandbox::spawn(config, listener, shutdown.clone())
        .await
        .expect("sandbox starts");
    let client =
        StripeClient::new(StripeConfig::new(provider.base_url(), "sk_test_e2e")).expect("client");

    let intent = client
        .create_intent(CreateIntent {
            amount_minor: 3100,
            currency: "EUR".into(),
            idempotency_key: format!("{run}:create_payment_intent"),
            metadata: BTreeMap::from([("run_id".to_owned(), run.to_string())]),
        })
        .await
        .expect("intent created");
    let paid = reqwest::Client::new()
        .post(format!(
            "{}/sandbox/payment_intents/{}/succeed",
            provider.base_url(),
            intent.id
        ))
        .send()
        .await
        .expect("paying");
    assert_eq!(paid.status(), 200);

    let deadline = Instant::now() + Duration::from_secs(10);
    let signals = loop {
        let signals = signals_of(&app, run).await;
        if !signals.is_empty() {
            break signals;
        }
        assert!(
            Instant::now() < deadline,
            "the webhook never reached the API"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(signals.len(), 1);
    assert_eq!(signals[0].name, "payment_succeeded");
    assert_eq!(signals[0].payload["intent_id"], intent.id.as_str());
    assert_eq!(signals[0].payload["amount_minor"], 3100);
    assert!(signals[0].dedupe_key.starts_with("stripe:evt_"));
}

fn refund_object(refund_id: &str, run_id: &str, status: &str) -> Value {
    json!({
        "id": refund_id,
        "object": "refund",
        "amount": 700,
        "currency": "eur",
        "payment_intent": "pi_paid",
        "charge": "ch_paid",
        "status": status,
        "failure_reason": if status == "failed" { json!("expired_or_canceled_card") } else { Value::Null },
        "metadata": {"run_id": run_id},
    })
}

#[tokio::test]
async fn refund_events_become_one_refund_updated_signal_of_the_refunds_run() {
    let app = app_with_secrets(&[SECRET]).await;
    let checkout = insert_run(&app).await;
    let refund_run = insert_run(&app).await;
    let run = refund_run.to_string();

    // The charge names the checkout; its listed refund names the refund run.
    let charge = json!({
        "id": "ch_paid", "object": "charge", "payment_intent": "pi_paid", "amount": 2500,
        "amount_refunded": 700, "currency": "eur", "metadata": {"run_id": checkout.to_string()},
        "refunds": {"object": "list", "data": [refund_object("re_1", &run, "pending")]},
    });
    let bodies = [
        event("evt_cr", "charge.refunded", charge),
        event(
            "evt_ru",
            "refund.updated",
            refund_object("re_1", &run, "failed"),
        ),
        event(
            "evt_rf",
            "refund.failed",
            refund_object("re_1", &run, "failed"),
        ),
        event(
            "evt_cru",
            "charge.refund.updated",
            refund_object("re_2", &run, "succeeded"),
        ),
    ];
    for body in &bodies {
        assert_eq!(outcome(post_signed(&app, body).await).await, "recorded");
    }

    assert!(
        signals_of(&app, checkout).await.is_empty(),
        "the checkout hears nothing"
    );
    let signals = signals_of(&app, refund_run).await;
    let told: Vec<(&str, &str, &str)> = signals
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.dedupe_key.as_str(),
                s.payload["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        told,
        [
            ("refund_updated", "stripe:evt_cr:re_1", "pending"),
            ("refund_updated", "stripe:evt_ru", "failed"),
            ("refund_updated", "stripe:evt_rf", "failed"),
            ("refund_updated", "stripe:evt_cru", "succeeded"),
        ]
    );
    assert_eq!(
        signals[2].payload,
        json!({
            "refund_id": "re_1",
            "status": "failed",
            "amount_minor": 700,
            "currency": "EUR",
            "payment_intent": "pi_paid",
            "failure_reason": "expired_or_canceled_card",
        })
    );
    assert_eq!(signals[3].payload["refund_id"], "re_2");
    assert_eq!(signals[3].payload["failure_reason"], Value::Null);
    assert_eq!(outbox_messages_for(&app, refund_run).await, 4);

    // A refund naming no run of ours, or a run that does not exist.
    let foreign = event(
        "evt_rx",
        "refund.updated",
        refund_object("re_9", "order-12", "succeeded"),
    );
    assert_eq!(outcome(post_signed(&app, &foreign).await).await, "no_run");
    let gone = event(
        "evt_ry",
        "refund.updated",
        refund_object("re_9", &Uuid::now_v7().to_string(), "succeeded"),
    );
    assert_eq!(outcome(post_signed(&app, &gone).await).await, "unknown_run");
    assert_eq!(stored(&app).await, (4, 4));
}

#[tokio::test]
async fn a_refund_event_five_times_is_one_signal() {
    let app = app_with_secrets(&[SECRET]).await;
    let run = insert_run(&app).await;
    let body = event(
        "evt_rdup",
        "refund.updated",
        refund_object("re_dup", &run.to_string(), "succeeded"),
    );
    let responses = futures::future::join_all((0..5).map(|_| post_signed(&app, &body))).await;
    let mut outcomes = Vec::new();
    for response in responses {
        outcomes.push(outcome(response).await);
    }
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate",
            "recorded"
        ]
    );
    let signals = signals_of(&app, run).await;
    assert_eq!(signals.len(), 1);
    assert_eq!(signals[0].name, "refund_updated");
    assert_eq!(signals[0].payload["refund_id"], "re_dup");
    assert_eq!(outbox_messages_for(&app, run).await, 1);
}

#[tokio::test]
async fn the_sandboxs_refund_webhooks_delivered_five_times_signal_the_refund_run_once_each() {
    let app = app_with_secrets(&[SECRET]).await;
    let checkout = insert_run(&app).await;
    let refund_run = insert_run(&app).await;
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the sandbox");
    let config =
        SandboxConfig::new(app.url("/v1/webhooks/stripe"), SECRET).with_secret_key("sk_test_e2e");
    let provider = sandbox::spawn(config, listener, shutdown.clone())
        .await
        .expect("sandbox starts");
    let base = provider.base_url();
    let client = StripeClient::new(StripeConfig::new(base.clone(), "sk_test_e2e")).expect("client");
    let http = reqwest::Client::new();

    let intent = client
        .create_intent(CreateIntent {
            amount_minor: 2500,
            currency: "EUR".into(),
            idempotency_key: format!("{checkout}:create_payment_intent"),
            metadata: BTreeMap::from([("run_id".to_owned(), checkout.to_string())]),
        })
        .await
        .expect("intent created");
    let paid = http
        .post(format!(
            "{base}/sandbox/payment_intents/{}/succeed",
            intent.id
        ))
        .send()
        .await
        .expect("paying");
    assert_eq!(paid.status(), 200);
    // Answered pending, failed 300 ms later; every webhook five times, shuffled.
    let switched = http
        .post(format!("{base}/sandbox/config"))
        .json(&json!({
            "refund_pending_ms": 300,
            "refund_fail_intents": [intent.id],
            "duplicate_deliveries": 5,
            "out_of_order": true,
            "out_of_order_max_delay_ms": 200,
        }))
        .send()
        .await
        .expect("switching");
    assert_eq!(switched.status(), 200);
    let refund = client
        .refund(CreateRefund {
            intent_id: intent.id.clone(),
            amount_minor: Some(1000),
            run_id: refund_run.to_string(),
            reason: Some(RefundReason::RequestedByCustomer),
            idempotency_key: format!("{refund_run}:refund:1"),
        })
        .await
        .expect("answered");
    assert_eq!(refund.status, RefundStatus::Pending);

    // charge.refunded (pending), then refund.updated and refund.failed (failed).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats: Value = http
            .get(format!("{base}/sandbox/stats"))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON");
        // The payment's event once (sent before the switch), then three
        // refund events five times each.
        if stats["webhooks"]["delivered"] == 16 {
            break;
        }
        assert!(Instant::now() < deadline, "webhooks not delivered: {stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let signals = signals_of(&app, refund_run).await;
    assert_eq!(signals.len(), 3, "{signals:?}");
    let mut statuses: Vec<&str> = signals
        .iter()
        .map(|s| {
            assert_eq!(s.name, "refund_updated");
            assert_eq!(s.payload["refund_id"], refund.id.as_str());
            assert_eq!(s.payload["payment_intent"], intent.id.as_str());
            assert_eq!(s.payload["amount_minor"], 1000);
            assert_eq!(s.payload["currency"], "EUR");
            s.payload["status"].as_str().unwrap_or_default()
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["failed", "failed", "pending"]);
    assert!(
        signals
            .iter()
            .filter(|s| s.payload["status"] == "failed")
            .all(|s| s.payload["failure_reason"] == "expired_or_canceled_card")
    );
    // The checkout heard only of its payment.
    let checkout_signals = signals_of(&app, checkout).await;
    assert_eq!(checkout_signals.len(), 1);
    assert_eq!(checkout_signals[0].name, "payment_succeeded");
    assert_eq!(outbox_messages_for(&app, refund_run).await, 3);
}
