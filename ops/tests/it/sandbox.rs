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
    Breaker, BreakerConfig, BreakerState, CancelOutcome, CreateIntent, IntentStatus,
    PaymentProvider, ProviderError, RefundStatus, StripeClient, StripeConfig,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

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

fn intent_request(key: &str, run_id: &str, amount_minor: i64) -> CreateIntent {
    CreateIntent {
        amount_minor,
        currency: "EUR".into(),
        idempotency_key: key.into(),
        metadata: BTreeMap::from([("run_id".to_owned(), run_id.to_owned())]),
    }
}

/// Polls `check` until it holds, for at most 10 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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
        matches!(&err, ProviderError::Fatal(m) if m.contains("idempotency_error")),
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
        .refund(&intent.id, None, "r:refund-early")
        .await
        .expect_err("nothing paid yet");
    assert!(!early.is_retryable(), "{early}");

    provider.succeed(&intent.id).await;
    let partial = client
        .refund(&intent.id, Some(1000), "r:refund-1")
        .await
        .expect("partial refund");
    assert_eq!(
        (partial.amount_minor, partial.status),
        (1000, RefundStatus::Succeeded)
    );
    let replayed = client
        .refund(&intent.id, Some(1000), "r:refund-1")
        .await
        .expect("replayed");
    assert_eq!(replayed, partial, "the same key never refunds twice");
    let rest = client
        .refund(&intent.id, None, "r:refund-2")
        .await
        .expect("the rest");
    assert_eq!(rest.amount_minor, 1500);
    let beyond = client
        .refund(&intent.id, Some(1), "r:refund-3")
        .await
        .expect_err("fully refunded");
    assert!(
        matches!(&beyond, ProviderError::Fatal(m) if m.contains("charge_already_refunded")),
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
        .refund(&paid.id, Some(200), "w1:refund")
        .await
        .expect("refunded");

    let receiver = provider.receiver.clone();
    eventually("three webhooks", || receiver.events().len() >= 3).await;
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
    eventually("the third attempt", || !receiver.events().is_empty()).await;
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
    eventually("three copies", || receiver.events().len() >= 3).await;
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
    eventually("six webhooks", || receiver.events().len() >= 6).await;
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
        matches!(&err, ProviderError::Fatal(m) if m.starts_with("401")),
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
