//! Sends the sandbox's events to the webhook URL, signed as Stripe signs them,
//! with the duplicate and out-of-order switches applied.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use boxoffice_api::webhooks::stripe_signature;
use boxoffice_workers::adapters::payments::STRIPE_API_VERSION;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use super::Shared;
use super::state::{EventSummary, Traffic};

/// Deliveries in flight at once: enough for benchmarks, few enough not to
/// drown a development API.
const CONCURRENT_DELIVERIES: usize = 32;
const FIRST_RETRY: Duration = Duration::from_millis(250);
const LONGEST_RETRY: Duration = Duration::from_secs(5);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds an event around `object`, records it and queues it for delivery
/// (unless refund webhooks are switched to be lost).
pub(super) fn emit(shared: &Shared, kind: &str, object: Value) {
    let created = chrono::Utc::now().timestamp();
    let id = super::routes::new_id("evt");
    let dropped = shared.switches().drop_refund_webhooks && is_refund_event(kind);
    shared.store.with(|ledger| {
        ledger.events.push(EventSummary {
            id: id.clone(),
            kind: kind.to_owned(),
            intent_id: intent_of(kind, &object),
            created,
            dropped,
        })
    });
    Traffic::bump(&shared.traffic.webhook_events);
    if dropped {
        Traffic::bump(&shared.traffic.webhooks_dropped);
        return;
    }
    let event = json!({
        "id": id,
        "object": "event",
        // The version Boxoffice's client pins: the shapes are that version's.
        "api_version": STRIPE_API_VERSION,
        "created": created,
        "livemode": false,
        "pending_webhooks": 1,
        "type": kind,
        "data": {"object": object},
    });
    // Fails only once the sender has stopped, at shutdown.
    let _ = shared.outgoing.send(event);
}

fn is_refund_event(kind: &str) -> bool {
    kind.starts_with("refund.") || kind.starts_with("charge.refund")
}

fn intent_of(kind: &str, object: &Value) -> Option<String> {
    let field = if kind.starts_with("charge.") || kind.starts_with("refund.") {
        "payment_intent"
    } else {
        "id"
    };
    object.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// Takes events off the queue until shutdown, each as one or more deliveries.
pub(super) async fn deliver_all(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Value>) {
    let client = match reqwest::Client::builder().timeout(DELIVERY_TIMEOUT).build() {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "the sandbox cannot build its webhook client; no webhooks will be sent");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    loop {
        let event = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            event = queue.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        let switches = shared.switches();
        // Serialised once: every copy of an event is byte-for-byte the same,
        // as Stripe's retries are.
        let body = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
        for _ in 0..switches.duplicate_deliveries.max(1) {
            let delay = if switches.out_of_order && switches.out_of_order_max_delay_ms > 0 {
                Duration::from_millis(rand::random_range(0..=switches.out_of_order_max_delay_ms))
            } else {
                Duration::ZERO
            };
            Traffic::bump(&shared.traffic.webhook_deliveries);
            tokio::spawn(deliver(
                shared.clone(),
                client.clone(),
                slots.clone(),
                body.clone(),
                delay,
                switches.webhook_max_attempts.max(1),
            ));
        }
    }
}

/// One delivery: posts until a 2xx, with doubling delays between attempts.
async fn deliver(
    shared: Arc<Shared>,
    client: reqwest::Client,
    slots: Arc<Semaphore>,
    body: Bytes,
    delay: Duration,
    max_attempts: u32,
) {
    if !sleep_unless_shutdown(&shared, delay).await {
        return;
    }
    let mut backoff = FIRST_RETRY;
    for attempt in 1..=max_attempts {
        let outcome = {
            let Ok(_slot) = slots.acquire().await else {
                return;
            };
            Traffic::bump(&shared.traffic.webhook_attempts);
            // Signed at each attempt, so a retry is never stale.
            let signature = stripe_signature::sign(
                &shared.webhook_secret,
                chrono::Utc::now().timestamp(),
                &body,
            );
            client
                .post(&shared.webhook_url)
                .header("content-type", "application/json")
                .header("stripe-signature", signature)
                .body(body.clone())
                .send()
                .await
        };
        match outcome {
            Ok(response) if response.status().is_success() => {
                Traffic::bump(&shared.traffic.webhooks_delivered);
                return;
            }
            Ok(response) => tracing::debug!(
                webhook.attempt = attempt,
                http.status = response.status().as_u16(),
                "sandbox webhook refused"
            ),
            Err(err) => {
                tracing::debug!(webhook.attempt = attempt, error = %err, "sandbox webhook failed")
            }
        }
        if attempt < max_attempts && !sleep_unless_shutdown(&shared, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(LONGEST_RETRY);
    }
    Traffic::bump(&shared.traffic.webhooks_abandoned);
    tracing::warn!(
        webhook.url = %shared.webhook_url,
        attempts = max_attempts,
        "sandbox gave up on a webhook delivery"
    );
}

/// Sleeps; `false` when the sandbox is stopping.
async fn sleep_unless_shutdown(shared: &Shared, duration: Duration) -> bool {
    if duration.is_zero() {
        return !shared.shutdown.is_cancelled();
    }
    tokio::select! {
        _ = shared.shutdown.cancelled() => false,
        _ = tokio::time::sleep(duration) => true,
    }
}
