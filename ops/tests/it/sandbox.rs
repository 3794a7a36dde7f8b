//! The payment client against the sandbox provider, over real HTTP: the same
//! idempotency, error classification and circuit breaking the workers rely on,
//! and the sandbox's signed webhooks checked with the API's own verifier.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use boxoffice_api::webhooks::stripe_signature;
use boxoffice_ops::sandbox::{self, Sandbox, SandboxConfig};
use boxoffice_workers::adapters::payments::{
    Breaker, BreakerConfig, BreakerState, CancelOutcome, CreateIntent, CreateRefund, ErrorCode,
    IntentStatus, PaymentProvider, ProviderError, RefundReason, RefundStatus, STRIPE_API_VERSION,
    StripeClient, StripeConfig,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::harness::wait;

/// How long a test waits for the sandbox's webhooks to arrive.
const WEBHOOKS: Duration = Duration::from_secs(10);

const SECRET_KEY: &str = "sk_test_sandbox_key";
const WEBHOOK_SECRET: &str = "whsec_sandbox_test";

/// A small webhook endpoint: verifies every request with the API's verifier
/// and keeps the events; refuses the first `refuse_first` requests with 503.
#[derive(Clone, Default)]
struct Receiver {
    verified: Arc<Mutex<Vec<(Value, Bytes)>>>,
    forged: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    refuse_first: Arc<AtomicUsize>,
}

impl Receiver {
    fn events(&self) -> Vec<Value> {
        self.verified
            .lock()
            .expect("lock")
            .iter()
            .map(|(e, _)| e.clone())
            .collect()
    }

    fn of_type(&self, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["type"] == kind)
            .collect()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    receiver.requests.fetch_add(1, Ordering::SeqCst);
    let refuse = receiver
        .refuse_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if refuse {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    match stripe_signature::verify(header, &body, &[WEBHOOK_SECRET.to_owned()], now, 300) {
        Ok(_) => {
            let event: Value = serde_json::from_slice(&body).expect("webhook body is JSON");
            receiver.verified.lock().expect("lock").push((event, body));
            StatusCode::OK
        }
        Err(_) => {
            receiver.forged.fetch_add(1, Ordering::SeqCst);
            StatusCode::BAD_REQUEST
        }
    }
}

struct Provider {
    sandbox: Sandbox,
    http: reqwest::Client,
    receiver: Receiver,
    shutdown: CancellationToken,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Provider {
    async fn start() -> Provider {
        let shutdown = CancellationToken::new();
        let receiver = Receiver::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the receiver");
        let webhook_url = format!(
            "http://{}/webhooks",
            listener.local_addr().expect("address")
        );
        let app = axum::Router::new()
            .route("/webhooks", axum::routing::post(receive))
            .with_state(receiver.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the sandbox");
        let config = SandboxConfig::new(webhook_url, WEBHOOK_SECRET).with_secret_key(SECRET_KEY);
        let sandbox = sandbox::spawn(config, listener, shutdown.clone())
            .await
            .expect("sandbox starts");
        Provider {
            sandbox,
            http: reqwest::Client::new(),
            receiver,
            shutdown,
        }
    }

    fn client(&self) -> StripeClient {
        self.client_with(SECRET_KEY, Duration::from_secs(10))
    }

    fn client_with(&self, key: &str, timeout: Duration) -> StripeClient {
        StripeClient::new(StripeConfig::new(self.sandbox.base_url(), key).with_timeout(timeout))
            .expect("client")
    }

    async fn control(&self, path: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/sandbox{path}", self.sandbox.base_url()))
            .send()
            .await
            .expect("sandbox control")
    }

    async fn succeed(&self, intent_id: &str) {
        let response = self
            .control(&format!("/payment_intents/{intent_id}/succeed"))
            .await;
        assert_eq!(
            response.status(),
            200,
            "{}",
            response.text().await.unwrap_or_default()
        );
    }

    async fn configure(&self, switches: Value) {
        let response = self
            .http
            .post(format!("{}/sandbox/config", self.sandbox.base_url()))
            .json(&switches)
            .send()
            .await
            .expect("sandbox config");
        assert_eq!(
            response.status(),
            200,
            "{}",
            response.text().await.unwrap_or_default()
        );
    }

    async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/sandbox/stats", self.sandbox.base_url()))
            .send()
            .await
            .expect("sandbox stats")
            .json()
            .await
            .expect("stats JSON")
    }
}

fn refund_request(intent_id: &str, amount_minor: Option<i64>, key: &str) -> CreateRefund {
    CreateRefund {
        intent_id: intent_id.to_owned(),
        amount_minor,
        run_id: format!("run-of-{key}"),
        reason: None,
        idempotency_key: key.to_owned(),
    }
}

fn intent_request(key: &str, run_id: &str, amount_minor: i64) -> CreateIntent {
    CreateIntent {
        amount_minor,
        currency: "EUR".into(),
        idempotency_key: key.into(),
        metadata: BTreeMap::from([("run_id".to_owned(), run_id.to_owned())]),
    }
}

/// Polls `check` until it holds, for at most 10 s.
/// No idempotency key, intent or run was charged more than once.
fn assert_no_double_charge(stats: &Value) {
    for table in [
        "charges_by_idempotency_key",
        "charges_by_intent",
        "charges_by_run_id",
        "intents_by_idempotency_key",
    ] {
        for (key, count) in stats[table].as_object().expect("a count table") {
            assert!(
                count.as_u64().expect("a count") <= 1,
                "{table}[{key}] = {count}"
            );
        }
    }
}

#[tokio::test]
async fn the_same_idempotency_key_makes_one_intent() {
    let provider = Provider::start().await;
    let client = provider.client();

    let first = client
        .create_intent(intent_request("run-1:create", "run-1", 2500))
        .await
        .expect("created");
    let again = client
        .create_intent(intent_request("run-1:create", "run-1", 2500))
        .await
        .expect("replayed");
    assert_eq!(first, again, "a repeated key returns the first intent");
    assert!(first.id.starts_with("pi_"));
    assert!(
        first
            .client_secret
            .as_deref()
            .is_some_and(|s| s.starts_with(&first.id))
    );
    assert_eq!(first.status, IntentStatus::RequiresPaymentMethod);
    assert_eq!((first.amount_minor, first.currency.as_str()), (2500, "EUR"));
    assert_eq!(
        first.metadata.get("run_id").map(String::as_str),
        Some("run-1")
    );

    let other = client
        .create_intent(intent_request("run-2:create", "run-2", 2500))
        .await
        .expect("created");
    assert_ne!(other.id, first.id);

    // The same key with another amount is refused, not a second intent.
    let err = client
        .create_intent(intent_request("run-1:create", "run-1", 9999))
        .await
        .expect_err("key reuse with other parameters");
    assert!(
        matches!(&err, ProviderError::Fatal { code: ErrorCode::IdempotencyKeyReused, detail } if detail.contains("idempotency_error")),
        "{err}"
    );

    let fetched = client.retrieve_intent(&first.id).await.expect("retrieved");
    assert_eq!(fetched.id, first.id);
    let stats = provider.stats().await;
    assert_eq!(stats["intents_created"], 2);
    assert_no_double_charge(&stats);
}

#[tokio::test]
async fn cancel_is_idempotent_and_a_paid_intent_reports_already_succeeded() {
    let provider = Provider::start().await;
    let client = provider.client();

    let unpaid = client
        .create_intent(intent_request("c1", "run-c1", 1000))
        .await
        .expect("created");
    assert_eq!(
        client.cancel_intent(&unpaid.id, "c1:cancel").await,
        Ok(CancelOutcome::Cancelled)
    );
    // The same key replays; another key finds it cancelled already: both fine.
    assert_eq!(
        client.cancel_intent(&unpaid.id, "c1:cancel").await,
        Ok(CancelOutcome::Cancelled)
    );
    assert_eq!(
        client.cancel_intent(&unpaid.id, "c1:cancel-2").await,
        Ok(CancelOutcome::Cancelled)
    );
    assert_eq!(
        client
            .retrieve_intent(&unpaid.id)
            .await
            .expect("read")
            .status,
        IntentStatus::Canceled
    );

    let paid = client
        .create_intent(intent_request("c2", "run-c2", 1000))
        .await
        .expect("created");
    provider.succeed(&paid.id).await;
    assert_eq!(
        client.cancel_intent(&paid.id, "c2:cancel").await,
        Ok(CancelOutcome::AlreadySucceeded),
        "the provider's refusal to cancel a paid intent is an answer, not an error"
    );
    assert_eq!(
        client.retrieve_intent(&paid.id).await.expect("read").status,
        IntentStatus::Succeeded
    );

    let missing = client
        .cancel_intent("pi_doesnotexist", "c3")
        .await
        .expect_err("unknown intent");
    assert!(!missing.is_retryable(), "{missing}");
    assert_eq!(provider.stats().await["cancellations"], 1);
}

#[tokio::test]
async fn refunds_are_idempotent_and_never_exceed_the_charge() {
    let provider = Provider::start().await;
    let client = provider.client();
    let intent = client
        .create_intent(intent_request("r", "run-r", 2500))
        .await
        .expect("created");

    let early = client
        .refund(refund_request(&intent.id, None, "r:refund-early"))
        .await
        .expect_err("nothing paid yet");
    assert!(!early.is_retryable(), "{early}");

    provider.succeed(&intent.id).await;
    let partial = client
        .refund(refund_request(&intent.id, Some(1000), "r:refund-1"))
        .await
        .expect("partial refund");
    assert_eq!(
        (partial.amount_minor, partial.status),
        (1000, RefundStatus::Succeeded)
    );
    let replayed = client
        .refund(refund_request(&intent.id, Some(1000), "r:refund-1"))
        .await
        .expect("replayed");
    assert_eq!(replayed, partial, "the same key never refunds twice");
    let rest = client
        .refund(refund_request(&intent.id, None, "r:refund-2"))
        .await
        .expect("the rest");
    assert_eq!(rest.amount_minor, 1500);
    let beyond = client
        .refund(refund_request(&intent.id, Some(1), "r:refund-3"))
        .await
        .expect_err("fully refunded");
    assert!(
        matches!(&beyond, ProviderError::Fatal { code: ErrorCode::ChargeAlreadyRefunded, detail } if detail.contains("charge_already_refunded")),
        "{beyond}"
    );

    let stats = provider.stats().await;
    assert_eq!(stats["refunds_by_intent"][&intent.id], 2);
    assert_eq!(stats["refunded_minor_by_intent"][&intent.id], 2500);
    assert_no_double_charge(&stats);
}

#[tokio::test]
async fn payments_and_refunds_send_signed_webhooks() {
    let provider = Provider::start().await;
    let client = provider.client();
    let paid = client
        .create_intent(intent_request("w1", "run-w1", 4200))
        .await
        .expect("created");
    let declined = client
        .create_intent(intent_request("w2", "run-w2", 4200))
        .await
        .expect("created");

    provider.succeed(&paid.id).await;
    let response = provider
        .control(&format!("/payment_intents/{}/fail", declined.id))
        .await;
    assert_eq!(response.status(), 200);
    client
        .refund(refund_request(&paid.id, Some(200), "w1:refund"))
        .await
        .expect("refunded");

    let receiver = provider.receiver.clone();
    wait::until(WEBHOOKS, "three webhooks", async || {
        receiver.events().len() >= 3
    })
    .await;
    assert_eq!(
        receiver.forged.load(Ordering::SeqCst),
        0,
        "every webhook verifies"
    );

    let succeeded = receiver.of_type("payment_intent.succeeded");
    assert_eq!(succeeded.len(), 1);
    let object = &succeeded[0]["data"]["object"];
    assert_eq!(object["id"], paid.id.as_str());
    assert_eq!(object["amount"], 4200);
    assert_eq!(object["currency"], "eur");
    assert_eq!(object["status"], "succeeded");
    assert_eq!(object["metadata"]["run_id"], "run-w1");
    assert!(
        succeeded[0]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("evt_"))
    );

    let failed = receiver.of_type("payment_intent.payment_failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["data"]["object"]["id"], declined.id.as_str());
    assert_eq!(failed[0]["data"]["object"]["metadata"]["run_id"], "run-w2");

    let refunded = receiver.of_type("charge.refunded");
    assert_eq!(refunded.len(), 1);
    let charge = &refunded[0]["data"]["object"];
    assert_eq!(charge["payment_intent"], paid.id.as_str());
    assert_eq!(charge["amount_refunded"], 200);
    assert_eq!(charge["metadata"]["run_id"], "run-w1");

    // Paying twice is refused by the sandbox: one charge per intent.
    let again = provider
        .control(&format!("/payment_intents/{}/succeed", paid.id))
        .await;
    assert_eq!(again.status(), 409);
    let stats = provider.stats().await;
    assert_eq!(stats["charges_by_run_id"]["run-w1"], 1);
    assert_eq!(stats["charges_by_intent"][&paid.id], 1);
    assert_no_double_charge(&stats);
}

#[tokio::test]
async fn a_refused_webhook_is_delivered_again() {
    let provider = Provider::start().await;
    provider.receiver.refuse_first.store(2, Ordering::SeqCst);
    let client = provider.client();
    let intent = client
        .create_intent(intent_request("rt", "run-rt", 100))
        .await
        .expect("created");
    provider.succeed(&intent.id).await;

    let receiver = provider.receiver.clone();
    wait::until(WEBHOOKS, "the third attempt", async || {
        !receiver.events().is_empty()
    })
    .await;
    assert_eq!(receiver.requests.load(Ordering::SeqCst), 3);
    let stats = provider.stats().await;
    assert_eq!(stats["webhooks"]["attempts"], 3);
    assert_eq!(stats["webhooks"]["delivered"], 1);
}

#[tokio::test]
async fn duplicate_deliveries_repeat_the_same_signed_event() {
    let provider = Provider::start().await;
    provider.configure(json!({"duplicate_deliveries": 3})).await;
    let client = provider.client();
    let intent = client
        .create_intent(intent_request("d", "run-d", 100))
        .await
        .expect("created");
    provider.succeed(&intent.id).await;

    let receiver = provider.receiver.clone();
    wait::until(WEBHOOKS, "three copies", async || {
        receiver.events().len() >= 3
    })
    .await;
    let copies = receiver.verified.lock().expect("lock").clone();
    assert_eq!(copies.len(), 3);
    assert!(
        copies.iter().all(|(_, body)| body == &copies[0].1),
        "byte-for-byte the same event"
    );
    assert_eq!(copies[0].0["type"], "payment_intent.succeeded");
    assert_eq!(receiver.forged.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn out_of_order_deliveries_all_arrive() {
    let provider = Provider::start().await;
    provider
        .configure(json!({"out_of_order": true, "out_of_order_max_delay_ms": 400}))
        .await;
    let client = provider.client();
    let mut ids = Vec::new();
    for n in 0..6 {
        let intent = client
            .create_intent(intent_request(&format!("o{n}"), &format!("run-o{n}"), 100))
            .await
            .expect("created");
        provider.succeed(&intent.id).await;
        ids.push(intent.id);
    }
    let receiver = provider.receiver.clone();
    wait::until(WEBHOOKS, "six webhooks", async || {
        receiver.events().len() >= 6
    })
    .await;
    let mut delivered: Vec<String> = receiver
        .events()
        .iter()
        .map(|e| {
            e["data"]["object"]["id"]
                .as_str()
                .expect("intent id")
                .to_owned()
        })
        .collect();
    delivered.sort();
    ids.sort();
    assert_eq!(
        delivered, ids,
        "each event exactly once, whatever the order"
    );
}

#[tokio::test]
async fn an_outage_is_retryable_and_opens_the_breaker_which_then_spares_the_provider() {
    let provider = Provider::start().await;
    let breaker = Breaker::new(
        "sandbox",
        provider.client(),
        BreakerConfig {
            consecutive_failures: 3,
            open_initial: Duration::from_secs(1),
            open_max: Duration::from_secs(30),
        },
    );
    breaker
        .create_intent(intent_request("before", "run-0", 100))
        .await
        .expect("provider up");
    provider.configure(json!({"outage": true})).await;
    let calls_before = provider.stats().await["api_calls"].as_u64().expect("count");

    for n in 0..3 {
        let err = breaker
            .create_intent(intent_request(&format!("out{n}"), "run-1", 100))
            .await
            .expect_err("outage");
        assert!(
            matches!(&err, ProviderError::Retryable(m) if m.starts_with("500")),
            "{err}"
        );
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    for n in 0..20 {
        let err = breaker
            .retrieve_intent(&format!("pi_{n}"))
            .await
            .expect_err("rejected");
        assert_eq!(err, ProviderError::Retryable("circuit open".into()));
    }
    let calls_during = provider.stats().await["api_calls"].as_u64().expect("count") - calls_before;
    assert_eq!(
        calls_during, 3,
        "an open breaker sends nothing to the provider"
    );

    // The provider recovers; after the open delay a probe closes the breaker.
    provider.configure(json!({"outage": false})).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    breaker
        .create_intent(intent_request("after", "run-2", 100))
        .await
        .expect("provider back");
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test]
async fn a_hanging_provider_times_out_as_a_retryable_error() {
    let provider = Provider::start().await;
    provider
        .configure(json!({"outage": true, "outage_mode": "timeout"}))
        .await;
    let client = provider.client_with(SECRET_KEY, Duration::from_millis(300));
    let started = Instant::now();
    let err = client
        .create_intent(intent_request("hang", "run-h", 100))
        .await
        .expect_err("timeout");
    assert!(
        matches!(&err, ProviderError::Retryable(m) if m.contains("timed out")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the client's own timeout ends the call"
    );
}

#[tokio::test]
async fn injected_errors_are_retryable_and_retries_with_the_key_charge_once() {
    let provider = Provider::start().await;
    let client = provider.client();

    provider.configure(json!({"error_rate": 1.0})).await;
    for _ in 0..3 {
        let err = client
            .create_intent(intent_request("e1", "run-e1", 100))
            .await
            .expect_err("injected");
        assert!(err.is_retryable(), "{err}");
    }
    assert_eq!(
        provider.stats().await["intents_created"],
        0,
        "an injected error does nothing"
    );

    // Half the calls fail before doing anything, and half of the rest do their
    // work and lose the response: retrying with the same key, as the job
    // runner does, still makes exactly one intent.
    provider
        .configure(json!({"error_rate": 0.5, "lost_response_rate": 0.5}))
        .await;
    let mut failures = 0;
    let intent = loop {
        match client
            .create_intent(intent_request("e2", "run-e2", 100))
            .await
        {
            Ok(intent) => break intent,
            Err(err) => {
                assert!(err.is_retryable(), "{err}");
                failures += 1;
                assert!(failures < 60, "the sandbox never answered");
            }
        }
    };
    provider
        .configure(json!({"error_rate": 0.0, "lost_response_rate": 0.0}))
        .await;
    provider.succeed(&intent.id).await;
    let stats = provider.stats().await;
    assert_eq!(stats["intents_created"], 1);
    assert_eq!(stats["intents_by_idempotency_key"]["e2"], 1);
    assert_eq!(stats["charges_by_idempotency_key"]["e2"], 1);
    assert_no_double_charge(&stats);
}

#[tokio::test]
async fn a_wrong_api_key_is_fatal_and_bad_switches_are_refused() {
    let provider = Provider::start().await;
    let client = provider.client_with("sk_test_wrong", Duration::from_secs(5));
    let err = client
        .create_intent(intent_request("k", "run-k", 100))
        .await
        .expect_err("unauthorized");
    assert!(
        matches!(&err, ProviderError::Fatal { code: ErrorCode::Unauthorized, detail } if detail.starts_with("401")),
        "{err}"
    );

    let response = provider
        .http
        .post(format!("{}/sandbox/config", provider.sandbox.base_url()))
        .json(&json!({"error_rate": 2.0}))
        .send()
        .await
        .expect("sandbox config");
    assert_eq!(response.status(), 422);
    assert_eq!(provider.stats().await["unauthorized"], 1);
}

/// A refund asked for with the client, in full or in part, for `run_id`.
fn refund_for(intent_id: &str, amount_minor: Option<i64>, key: &str, run_id: &str) -> CreateRefund {
    CreateRefund {
        run_id: run_id.to_owned(),
        ..refund_request(intent_id, amount_minor, key)
    }
}

impl Provider {
    /// A paid intent of `amount_minor`.
    async fn paid_intent(&self, key: &str, amount_minor: i64) -> String {
        let intent = self
            .client()
            .create_intent(intent_request(key, &format!("run-{key}"), amount_minor))
            .await
            .expect("created");
        self.succeed(&intent.id).await;
        intent.id
    }

    async fn events(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/sandbox/events", self.sandbox.base_url()))
            .send()
            .await
            .expect("sandbox events")
            .json()
            .await
            .expect("events JSON")
    }
}

/// The refund webhooks received for `refund_id`, as (event type, refund object).
fn refund_events(receiver: &Receiver, refund_id: &str) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for event in receiver.events() {
        let kind = event["type"].as_str().unwrap_or_default().to_owned();
        let object = &event["data"]["object"];
        let refunds: Vec<Value> = match object["object"].as_str() {
            Some("refund") => vec![object.clone()],
            Some("charge") => object["refunds"]["data"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        found.extend(
            refunds
                .into_iter()
                .filter(|r| r["id"] == refund_id)
                .map(|r| (kind.clone(), r)),
        );
    }
    found
}

#[tokio::test]
async fn a_refund_key_replays_its_first_answer_errors_included_and_refuses_other_parameters() {
    let provider = Provider::start().await;
    let client = provider.client();
    let intent = client
        .create_intent(intent_request("ri", "run-ri", 2500))
        .await
        .expect("created");

    // Refused while unpaid; once paid, the same key still gets that first
    // answer (Stripe keeps it, errors included), a new key gets a refund.
    let early = client
        .refund(refund_for(&intent.id, Some(1000), "ri:early", "run-x"))
        .await
        .expect_err("nothing paid yet");
    assert_eq!(early.code(), ErrorCode::PaymentNotRefundable, "{early}");
    provider.succeed(&intent.id).await;
    let replayed_error = client
        .refund(refund_for(&intent.id, Some(1000), "ri:early", "run-x"))
        .await
        .expect_err("the first answer, replayed");
    assert_eq!(replayed_error, early);

    let first = client
        .refund(refund_for(&intent.id, Some(1000), "ri:1", "run-x"))
        .await
        .expect("refunded");
    assert_eq!(first.status, RefundStatus::Succeeded);
    assert_eq!((first.amount_minor, first.currency.as_str()), (1000, "EUR"));
    assert_eq!(first.payment_intent.as_deref(), Some(intent.id.as_str()));
    assert_eq!(first.failure_reason, None);
    for _ in 0..3 {
        let again = client
            .refund(refund_for(&intent.id, Some(1000), "ri:1", "run-x"))
            .await
            .expect("replayed");
        assert_eq!(again, first, "one key, one refund");
    }
    // The same key with another amount, or for another run, is refused.
    for other in [
        refund_for(&intent.id, Some(900), "ri:1", "run-x"),
        refund_for(&intent.id, Some(1000), "ri:1", "run-y"),
    ] {
        let err = client.refund(other).await.expect_err("key reused");
        assert_eq!(err.code(), ErrorCode::IdempotencyKeyReused, "{err}");
        assert!(!err.is_retryable());
    }

    // More than what is left (1500) is refused for good, with Stripe's code.
    let too_much = client
        .refund(refund_for(&intent.id, Some(1501), "ri:2", "run-x"))
        .await
        .expect_err("more than is left");
    assert_eq!(too_much.code(), ErrorCode::AmountTooLarge, "{too_much}");
    assert!(too_much.to_string().contains("amount_too_large"));
    let rest = client
        .refund(refund_for(&intent.id, Some(1500), "ri:3", "run-x"))
        .await
        .expect("the rest");
    let nothing_left = client
        .refund(refund_for(&intent.id, Some(1), "ri:4", "run-x"))
        .await
        .expect_err("nothing left");
    assert_eq!(nothing_left.code(), ErrorCode::ChargeAlreadyRefunded);

    assert_eq!(
        client.retrieve_refund(&rest.id).await.expect("read"),
        rest,
        "GET /v1/refunds/{{id}} tells the same refund"
    );
    let missing = client
        .retrieve_refund("re_doesnotexist")
        .await
        .expect_err("no such refund");
    assert_eq!(missing.code(), ErrorCode::NotFound);

    let stats = provider.stats().await;
    assert_eq!(stats["charged_minor_by_intent"][&intent.id], 2500);
    assert_eq!(stats["refunds_by_intent"][&intent.id], 2);
    assert_eq!(stats["refunded_minor_by_intent"][&intent.id], 2500);
    assert_eq!(stats["refunds_refused_by_intent"][&intent.id], 2);
    assert!(stats["refunds_failed_by_intent"].get(&intent.id).is_none());
    // Three replays of ri:1, one of ri:early.
    assert_eq!(stats["idempotent_replays"], 4);
    assert_no_double_charge(&stats);
}

#[tokio::test]
async fn a_refund_of_a_failing_intent_is_answered_failed_and_gives_nothing_back() {
    let provider = Provider::start().await;
    let client = provider.client();
    let failing = provider.paid_intent("rf", 1200).await;
    let healthy = provider.paid_intent("rh", 1200).await;
    provider
        .configure(json!({"refund_fail_intents": [failing.clone()]}))
        .await;

    let failed = client
        .refund(refund_for(&failing, None, "rf:1", "run-rf"))
        .await
        .expect("an answer, not an error");
    assert_eq!(failed.status, RefundStatus::Failed);
    assert_eq!(failed.status.settled(), Some(false));
    assert_eq!(
        failed.failure_reason.as_deref(),
        Some("expired_or_canceled_card")
    );
    let ok = client
        .refund(refund_for(&healthy, None, "rh:1", "run-rh"))
        .await
        .expect("refunded");
    assert_eq!(ok.status, RefundStatus::Succeeded);

    let receiver = provider.receiver.clone();
    wait::until(WEBHOOKS, "the refund.failed webhook", async || {
        !refund_events(&receiver, &failed.id).is_empty()
    })
    .await;
    let events = refund_events(&receiver, &failed.id);
    assert_eq!(events.len(), 1, "{events:?}");
    let (kind, object) = &events[0];
    assert_eq!(kind, "refund.failed");
    assert_eq!(object["status"], "failed");
    assert_eq!(object["payment_intent"], failing.as_str());
    assert_eq!(object["metadata"]["run_id"], "run-rf");

    // Cleared, the same key still tells the failure; a new key refunds it all.
    provider.configure(json!({"refund_fail_intents": []})).await;
    let replayed = client
        .refund(refund_for(&failing, None, "rf:1", "run-rf"))
        .await
        .expect("replayed");
    assert_eq!(replayed, failed);
    let retried = client
        .refund(refund_for(&failing, None, "rf:2", "run-rf"))
        .await
        .expect("refunded under a new key");
    assert_eq!(
        (retried.status, retried.amount_minor),
        (RefundStatus::Succeeded, 1200)
    );

    let stats = provider.stats().await;
    assert_eq!(stats["refunds_failed_by_intent"][&failing], 1);
    assert_eq!(stats["refunds_by_intent"][&failing], 1);
    assert_eq!(stats["refunded_minor_by_intent"][&failing], 1200);
    assert_eq!(stats["refunded_minor_by_intent"][&healthy], 1200);
    for intent in [&failing, &healthy] {
        assert!(
            stats["refunded_minor_by_intent"][intent].as_i64()
                <= stats["charged_minor_by_intent"][intent].as_i64()
        );
    }
}

#[tokio::test]
async fn pending_refunds_settle_by_webhook_and_hold_their_amount_meanwhile() {
    let provider = Provider::start().await;
    let client = provider.client();
    let failing = provider.paid_intent("pf", 1000).await;
    let healthy = provider.paid_intent("ph", 1000).await;
    provider
        .configure(json!({
            "refund_pending_ms": 400,
            "refund_fail_intents": [failing.clone()],
            "duplicate_deliveries": 2,
            "out_of_order": true,
            "out_of_order_max_delay_ms": 100,
        }))
        .await;

    let to_fail = client
        .refund(refund_for(&failing, None, "pf:1", "run-pf"))
        .await
        .expect("answered");
    let to_succeed = client
        .refund(refund_for(&healthy, Some(600), "ph:1", "run-ph"))
        .await
        .expect("answered");
    for refund in [&to_fail, &to_succeed] {
        assert_eq!(refund.status, RefundStatus::Pending, "{refund:?}");
        assert_eq!(refund.status.settled(), None);
    }
    // While pending, the amount is taken: nothing more can be refunded.
    let meanwhile = client
        .refund(refund_for(&failing, Some(1), "pf:2", "run-pf"))
        .await
        .expect_err("held by the pending refund");
    assert_eq!(meanwhile.code(), ErrorCode::ChargeAlreadyRefunded);
    let stats = provider.stats().await;
    assert_eq!(stats["refunds_pending_by_intent"][&failing], 1);
    assert_eq!(stats["refund_pending_minor_by_intent"][&healthy], 600);

    let receiver = provider.receiver.clone();
    wait::until(
        WEBHOOKS,
        "both refunds settled, every copy delivered",
        async || {
            refund_events(&receiver, &to_fail.id)
                .iter()
                .filter(|(kind, _)| kind.starts_with("refund."))
                .count()
                == 4
                && refund_events(&receiver, &to_succeed.id)
                    .iter()
                    .filter(|(kind, _)| kind.starts_with("refund."))
                    .count()
                    == 2
        },
    )
    .await;
    let mut kinds: Vec<(String, String)> = refund_events(&receiver, &to_fail.id)
        .into_iter()
        .map(|(kind, r)| (kind, r["status"].as_str().unwrap_or_default().to_owned()))
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            ("charge.refunded".to_owned(), "pending".to_owned()),
            ("refund.failed".to_owned(), "failed".to_owned()),
            ("refund.updated".to_owned(), "failed".to_owned()),
        ]
    );
    for (_, refund) in refund_events(&receiver, &to_succeed.id) {
        assert_eq!(refund["metadata"]["run_id"], "run-ph");
        assert_eq!(refund["payment_intent"], healthy.as_str());
    }
    assert!(
        refund_events(&receiver, &to_succeed.id)
            .iter()
            .any(|(kind, r)| kind == "refund.updated" && r["status"] == "succeeded")
    );

    // Asking tells the same: a lost webhook costs nothing.
    let read = client.retrieve_refund(&to_fail.id).await.expect("read");
    assert_eq!(read.status, RefundStatus::Failed);
    assert_eq!(
        read.failure_reason.as_deref(),
        Some("expired_or_canceled_card")
    );
    assert_eq!(
        client
            .retrieve_refund(&to_succeed.id)
            .await
            .expect("read")
            .status,
        RefundStatus::Succeeded
    );
    // The failed refund gave its amount back: it can be refunded again.
    provider
        .configure(json!({"refund_pending_ms": 0, "refund_fail_intents": []}))
        .await;
    let again = client
        .refund(refund_for(&failing, None, "pf:3", "run-pf"))
        .await
        .expect("refunded");
    assert_eq!(
        (again.status, again.amount_minor),
        (RefundStatus::Succeeded, 1000)
    );

    let stats = provider.stats().await;
    assert_eq!(stats["refunds_failed_by_intent"][&failing], 1);
    assert_eq!(stats["refunded_minor_by_intent"][&failing], 1000);
    assert_eq!(stats["refunded_minor_by_intent"][&healthy], 600);
    assert!(
        stats["refunds_pending_by_intent"]
            .as_object()
            .is_some_and(|m| m.is_empty())
    );
}

#[tokio::test]
async fn lost_refund_webhooks_are_recorded_but_never_delivered() {
    let provider = Provider::start().await;
    let client = provider.client();
    provider
        .configure(json!({"drop_refund_webhooks": true}))
        .await;
    let intent = provider.paid_intent("lw", 800).await;
    let refund = client
        .refund(refund_for(&intent, Some(300), "lw:1", "run-lw"))
        .await
        .expect("refunded");

    let receiver = provider.receiver.clone();
    wait::until(WEBHOOKS, "the payment webhook", async || {
        !receiver.of_type("payment_intent.succeeded").is_empty()
    })
    .await;
    let events = provider.events().await;
    let refunded: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "charge.refunded")
        .collect();
    assert_eq!(refunded.len(), 1, "{events:?}");
    assert_eq!(refunded[0]["dropped"], true);
    assert_eq!(refunded[0]["intent_id"], intent.as_str());
    // Delivered webhooks would be here by now (the payment's was).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(refund_events(&receiver, &refund.id).is_empty());
    assert_eq!(provider.stats().await["webhooks"]["dropped"], 1);
    assert_eq!(
        client
            .retrieve_refund(&refund.id)
            .await
            .expect("read")
            .status,
        RefundStatus::Succeeded,
        "asking the provider still tells"
    );
}

/// What the client sent: method, path, headers, form.
type Captured = Arc<Mutex<Vec<(String, String, HeaderMap, Vec<(String, String)>)>>>;

async fn capture(
    State(captured): State<Captured>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    // A POST's form-encoded body; a GET's query string.
    axum::extract::Form(form): axum::extract::Form<Vec<(String, String)>>,
) -> axum::Json<Value> {
    captured
        .lock()
        .expect("lock")
        .push((method.to_string(), uri.path().to_owned(), headers, form));
    axum::Json(json!({
        "id": "re_captured", "object": "refund", "amount": 700, "currency": "eur",
        "payment_intent": "pi_captured", "status": "pending", "failure_reason": null,
        "metadata": {"run_id": "run-c"},
    }))
}

#[tokio::test]
async fn the_client_pins_the_api_version_and_sends_the_refund_form_with_its_key() {
    let captured = Captured::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let app = axum::Router::new()
        .fallback(capture)
        .with_state(captured.clone());
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    let client = StripeClient::new(StripeConfig::new(base, "sk_test_capture")).expect("client");

    let refund = client
        .refund(CreateRefund {
            intent_id: "pi_captured".into(),
            amount_minor: Some(700),
            run_id: "run-c".into(),
            reason: Some(RefundReason::RequestedByCustomer),
            idempotency_key: "run-c:refund:1".into(),
        })
        .await
        .expect("answered");
    assert_eq!(refund.status, RefundStatus::Pending);
    assert_eq!(refund.currency, "EUR");
    client
        .retrieve_refund("re_captured")
        .await
        .expect("answered");

    let requests = captured.lock().expect("lock").clone();
    assert_eq!(requests.len(), 2);
    let (method, path, headers, form) = &requests[0];
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/v1/refunds"));
    let header = |headers: &HeaderMap, name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header(headers, "stripe-version").as_deref(),
        Some(STRIPE_API_VERSION)
    );
    assert_eq!(
        header(headers, "idempotency-key").as_deref(),
        Some("run-c:refund:1")
    );
    assert_eq!(
        header(headers, "authorization").as_deref(),
        Some("Bearer sk_test_capture")
    );
    assert_eq!(
        header(headers, "content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        form,
        &[
            ("payment_intent".to_owned(), "pi_captured".to_owned()),
            ("amount".to_owned(), "700".to_owned()),
            ("metadata[run_id]".to_owned(), "run-c".to_owned()),
            ("reason".to_owned(), "requested_by_customer".to_owned()),
        ]
    );

    let (method, path, headers, form) = &requests[1];
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("GET", "/v1/refunds/re_captured")
    );
    assert_eq!(
        header(headers, "stripe-version").as_deref(),
        Some(STRIPE_API_VERSION)
    );
    assert_eq!(
        header(headers, "idempotency-key"),
        None,
        "a read needs no key"
    );
    assert!(form.is_empty());
    assert!(
        STRIPE_API_VERSION.starts_with("20"),
        "a dated Stripe version"
    );
}

#[tokio::test]
async fn concurrent_refunds_of_one_intent_never_exceed_its_charge() {
    let provider = Provider::start().await;
    let client = provider.client();
    let intent = provider.paid_intent("cr", 2500).await;

    // Twelve refunds of 300 at once, each under its own key: 8 fit (2400), the
    // rest find too little left.
    let attempts = futures::future::join_all((0..12).map(|n| {
        let client = client.clone();
        let intent = intent.clone();
        async move {
            client
                .refund(refund_for(&intent, Some(300), &format!("cr:{n}"), "run-cr"))
                .await
        }
    }))
    .await;
    let refunded: i64 = attempts
        .iter()
        .filter_map(|a| a.as_ref().ok())
        .map(|r| {
            assert_eq!(r.status, RefundStatus::Succeeded);
            r.amount_minor
        })
        .sum();
    let refused: Vec<ErrorCode> = attempts
        .iter()
        .filter_map(|a| a.as_ref().err())
        .map(ProviderError::code)
        .collect();
    assert_eq!(refunded, 2400);
    assert_eq!(refused, [ErrorCode::AmountTooLarge; 4]);

    let stats = provider.stats().await;
    assert_eq!(stats["refunds_by_intent"][&intent], 8);
    assert_eq!(stats["refunded_minor_by_intent"][&intent], 2400);
    assert_eq!(stats["charged_minor_by_intent"][&intent], 2500);
    assert_eq!(stats["refunds_refused_by_intent"][&intent], 4);
}
