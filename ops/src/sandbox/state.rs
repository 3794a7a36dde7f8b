//! The sandbox's memory: intents, refunds, stored idempotent responses, the
//! fault switches and the counters tests read.
//!
//! Every change to the ledger happens under one mutex, and a request with an
//! idempotency key looks up, executes and stores its response under that same
//! lock: two concurrent requests with one key can never both execute, so a key
//! can never make a second intent or a second refund.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How the sandbox misbehaves; changed at run time with `POST /sandbox/config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Switches {
    /// Added to every API call before it is handled.
    pub latency_ms: u64,
    /// Share (0..=1) of API calls answered 500 without doing anything.
    pub error_rate: f64,
    /// Share (0..=1) of API calls that do their work and are then answered 500,
    /// as if the response was lost on the way: what idempotency keys are for.
    pub lost_response_rate: f64,
    /// Every API call fails, as `outage_mode` says.
    pub outage: bool,
    pub outage_mode: OutageMode,
    /// Each webhook is delivered this many times (at least once).
    pub duplicate_deliveries: u32,
    /// Each delivery waits a random time up to `out_of_order_max_delay_ms`, so
    /// later events often arrive before earlier ones.
    pub out_of_order: bool,
    pub out_of_order_max_delay_ms: u64,
    /// Attempts per delivery before the sandbox gives up on it.
    pub webhook_max_attempts: u32,
    /// Refunds of these payment intents fail (`failure_reason`
    /// `expired_or_canceled_card`): answered `failed` at once, or, with
    /// `refund_pending_ms`, answered `pending` and failed later by webhook.
    pub refund_fail_intents: Vec<String>,
    /// 0: a refund settles at once. Otherwise every refund is answered
    /// `pending` and settles (succeeds, or fails as above) this many
    /// milliseconds later, told by `refund.updated` (and `refund.failed`).
    pub refund_pending_ms: u64,
    /// Refund events (`charge.refunded`, `refund.*`) are recorded in
    /// `/sandbox/events` but never delivered: lost webhooks.
    pub drop_refund_webhooks: bool,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            latency_ms: 0,
            error_rate: 0.0,
            lost_response_rate: 0.0,
            outage: false,
            outage_mode: OutageMode::Error,
            duplicate_deliveries: 1,
            out_of_order: false,
            out_of_order_max_delay_ms: 1500,
            webhook_max_attempts: 6,
            refund_fail_intents: Vec::new(),
            refund_pending_ms: 0,
            drop_refund_webhooks: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageMode {
    /// Every API call is answered 500 at once.
    Error,
    /// Every API call hangs (until the sandbox stops), past any client timeout.
    Timeout,
}

/// `POST /sandbox/config`: only the fields given change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchesPatch {
    pub latency_ms: Option<u64>,
    pub error_rate: Option<f64>,
    pub lost_response_rate: Option<f64>,
    pub outage: Option<bool>,
    pub outage_mode: Option<OutageMode>,
    pub duplicate_deliveries: Option<u32>,
    pub out_of_order: Option<bool>,
    pub out_of_order_max_delay_ms: Option<u64>,
    pub webhook_max_attempts: Option<u32>,
    pub refund_fail_intents: Option<Vec<String>>,
    pub refund_pending_ms: Option<u64>,
    pub drop_refund_webhooks: Option<bool>,
}

impl Switches {
    pub fn apply(&mut self, patch: SwitchesPatch) -> Result<(), String> {
        let rate = |name: &str, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(value)
            } else {
                Err(format!("{name} must be between 0 and 1"))
            }
        };
        let mut next = self.clone();
        if let Some(v) = patch.latency_ms {
            next.latency_ms = v;
        }
        if let Some(v) = patch.error_rate {
            next.error_rate = rate("error_rate", v)?;
        }
        if let Some(v) = patch.lost_response_rate {
            next.lost_response_rate = rate("lost_response_rate", v)?;
        }
        if let Some(v) = patch.outage {
            next.outage = v;
        }
        if let Some(v) = patch.outage_mode {
            next.outage_mode = v;
        }
        if let Some(v) = patch.duplicate_deliveries {
            next.duplicate_deliveries = v.max(1);
        }
        if let Some(v) = patch.out_of_order {
            next.out_of_order = v;
        }
        if let Some(v) = patch.out_of_order_max_delay_ms {
            next.out_of_order_max_delay_ms = v;
        }
        if let Some(v) = patch.webhook_max_attempts {
            next.webhook_max_attempts = v.max(1);
        }
        if let Some(v) = patch.refund_fail_intents {
            next.refund_fail_intents = v;
        }
        if let Some(v) = patch.refund_pending_ms {
            next.refund_pending_ms = v;
        }
        if let Some(v) = patch.drop_refund_webhooks {
            next.drop_refund_webhooks = v;
        }
        *self = next;
        Ok(())
    }
}

/// A payment intent as the sandbox keeps it.
#[derive(Debug, Clone)]
pub struct Intent {
    pub id: String,
    pub amount: i64,
    /// Lower case, as Stripe sends it.
    pub currency: String,
    pub metadata: BTreeMap<String, String>,
    pub status: &'static str,
    pub client_secret: String,
    pub created: i64,
    pub idempotency_key: Option<String>,
    pub charge_id: Option<String>,
    /// Refunded or being refunded (pending): what is left to refund is
    /// `amount - amount_refunded`, so pending refunds cannot overdraw it. A
    /// refund that fails gives its amount back.
    pub amount_refunded: i64,
    pub last_payment_error: Option<Value>,
    pub canceled_at: Option<i64>,
}

impl Intent {
    /// The intent as Stripe's API shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_received": if self.status == "succeeded" { self.amount } else { 0 },
            "currency": self.currency,
            "status": self.status,
            "client_secret": self.client_secret,
            "metadata": self.metadata,
            "created": self.created,
            "livemode": false,
            "automatic_payment_methods": {"enabled": true},
            "latest_charge": self.charge_id,
            "last_payment_error": self.last_payment_error,
            "canceled_at": self.canceled_at,
        })
    }

    /// The intent's charge (the object of `charge.*` events), with its refunds.
    /// Stripe lists them only when the charge's `refunds` are expanded; the
    /// sandbox always does, so `charge.refunded` alone names the refund and
    /// its run.
    pub fn charge_json(&self, refunds: Vec<Value>) -> Value {
        json!({
            "id": self.charge_id,
            "object": "charge",
            "amount": self.amount,
            "amount_refunded": self.amount_refunded,
            "currency": self.currency,
            "payment_intent": self.id,
            "metadata": self.metadata,
            "paid": true,
            "refunded": self.amount_refunded >= self.amount,
            "refunds": {
                "object": "list",
                "total_count": refunds.len(),
                "has_more": false,
                "url": format!("/v1/charges/{}/refunds", self.charge_id.as_deref().unwrap_or_default()),
                "data": refunds,
            },
            "status": "succeeded",
            "livemode": false,
        })
    }

    /// Statuses from which Stripe lets an intent be cancelled (or paid).
    pub fn is_open(&self) -> bool {
        matches!(
            self.status,
            "requires_payment_method"
                | "requires_confirmation"
                | "requires_action"
                | "requires_capture"
        )
    }
}

#[derive(Debug, Clone)]
pub struct RefundRecord {
    pub id: String,
    pub payment_intent: String,
    pub charge: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub metadata: BTreeMap<String, String>,
    pub reason: Option<String>,
    /// `pending`, `succeeded` or `failed`.
    pub status: &'static str,
    /// What a pending refund becomes when it settles.
    pub settles_as: &'static str,
    pub failure_reason: Option<&'static str>,
    pub created: i64,
}

/// Stripe's `failure_reason` for the sandbox's failing refunds.
pub const REFUND_FAILURE_REASON: &str = "expired_or_canceled_card";

impl RefundRecord {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "refund",
            "amount": self.amount,
            "currency": self.currency,
            "payment_intent": self.payment_intent,
            "charge": self.charge,
            "metadata": self.metadata,
            "reason": self.reason,
            "status": self.status,
            "failure_reason": self.failure_reason,
            "created": self.created,
        })
    }
}

/// A response kept for replay under its idempotency key.
#[derive(Debug, Clone)]
struct StoredResponse {
    /// Method, path and the sorted parameters: a key reused with other
    /// parameters is an error, as at Stripe.
    fingerprint: String,
    status: StatusCode,
    body: Value,
}

/// What a handler decided: the response, and the webhook events to send once
/// the lock is released.
#[derive(Debug)]
pub struct Outcome {
    pub status: StatusCode,
    pub body: Value,
    pub events: Vec<(&'static str, Value)>,
}

impl Outcome {
    pub fn ok(body: Value) -> Self {
        Outcome {
            status: StatusCode::OK,
            body,
            events: Vec::new(),
        }
    }

    pub fn with_event(mut self, kind: &'static str, object: Value) -> Self {
        self.events.push((kind, object));
        self
    }

    /// A Stripe-shaped error: `{"error": {"type", "code", "message", "param"}}`.
    pub fn error(
        status: StatusCode,
        kind: &str,
        code: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Outcome {
            status,
            body: json!({"error": {"type": kind, "code": code, "message": message.into()}}),
            events: Vec::new(),
        }
    }

    pub fn invalid(code: &str, message: impl Into<String>) -> Self {
        Self::error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some(code),
            message,
        )
    }

    pub fn missing(kind: &str, id: &str) -> Self {
        Self::error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("resource_missing"),
            format!("No such {kind}: '{id}'"),
        )
    }

    /// Adds a field to the error object (`param`, `payment_intent`).
    pub fn with_error_field(mut self, key: &str, value: Value) -> Self {
        if let Some(error) = self.body.get_mut("error") {
            error[key] = value;
        }
        self
    }
}

/// Everything behind the lock.
#[derive(Debug, Default)]
pub struct Ledger {
    pub intents: BTreeMap<String, Intent>,
    pub refunds: BTreeMap<String, RefundRecord>,
    idempotency: BTreeMap<String, StoredResponse>,
    pub counts: Counts,
    /// Every event sent, oldest first (`GET /sandbox/events`).
    pub events: Vec<EventSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventSummary {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub intent_id: Option<String>,
    pub created: i64,
    /// Never delivered (`drop_refund_webhooks`).
    pub dropped: bool,
}

/// The figures behind `GET /sandbox/stats` that change with the ledger.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    pub intents_created: u64,
    /// Intents made per idempotency key (more than one would be a bug here).
    pub intents_by_idempotency_key: BTreeMap<String, u64>,
    /// Money taken: an intent that succeeded counts as one charge, under the
    /// key that created it, under its id and under its `metadata.run_id`.
    pub charges_by_idempotency_key: BTreeMap<String, u64>,
    pub charges_by_intent: BTreeMap<String, u64>,
    pub charges_by_run_id: BTreeMap<String, u64>,
    /// Money taken per intent (its amount, once it succeeded).
    pub charged_minor_by_intent: BTreeMap<String, i64>,
    pub cancellations: u64,
    /// `POST /v1/refunds` refused because the charge had not that much left
    /// (`amount_too_large`, `charge_already_refunded`), per intent.
    pub refunds_refused_by_intent: BTreeMap<String, u64>,
    /// Refunds made per idempotency key (answered, whatever their status): a
    /// retried refund shows up under a new key.
    pub refunds_by_idempotency_key: BTreeMap<String, u64>,
    pub idempotent_replays: u64,
}

/// The refund figures of `GET /sandbox/stats`, read from the refunds
/// themselves (a pending refund may still fail).
#[derive(Debug, Default, Clone, Serialize)]
pub struct RefundCounts {
    /// Refunds that succeeded, and their sum.
    pub refunds_by_intent: BTreeMap<String, u64>,
    pub refunded_minor_by_intent: BTreeMap<String, i64>,
    /// Not settled yet, and their sum.
    pub refunds_pending_by_intent: BTreeMap<String, u64>,
    pub refund_pending_minor_by_intent: BTreeMap<String, i64>,
    /// Refunds that failed (the money was not given back).
    pub refunds_failed_by_intent: BTreeMap<String, u64>,
}

impl Ledger {
    /// The intent's charge with its refunds, oldest first.
    pub fn charge_json(&self, intent: &Intent) -> Value {
        let refunds = self
            .refunds
            .values()
            .filter(|r| r.payment_intent == intent.id)
            .map(RefundRecord::to_json)
            .collect();
        intent.charge_json(refunds)
    }

    pub fn refund_counts(&self) -> RefundCounts {
        let mut counts = RefundCounts::default();
        for refund in self.refunds.values() {
            let intent = refund.payment_intent.clone();
            match refund.status {
                "succeeded" => {
                    *counts.refunds_by_intent.entry(intent.clone()).or_default() += 1;
                    *counts.refunded_minor_by_intent.entry(intent).or_default() += refund.amount;
                }
                "pending" => {
                    *counts
                        .refunds_pending_by_intent
                        .entry(intent.clone())
                        .or_default() += 1;
                    *counts
                        .refund_pending_minor_by_intent
                        .entry(intent)
                        .or_default() += refund.amount;
                }
                _ => *counts.refunds_failed_by_intent.entry(intent).or_default() += 1,
            }
        }
        counts
    }

    pub fn record_charge(&mut self, intent: &Intent) {
        let key = intent
            .idempotency_key
            .clone()
            .unwrap_or_else(|| "(none)".to_owned());
        *self
            .counts
            .charges_by_idempotency_key
            .entry(key)
            .or_default() += 1;
        *self
            .counts
            .charges_by_intent
            .entry(intent.id.clone())
            .or_default() += 1;
        *self
            .counts
            .charged_minor_by_intent
            .entry(intent.id.clone())
            .or_default() += intent.amount;
        if let Some(run) = intent.metadata.get("run_id") {
            *self
                .counts
                .charges_by_run_id
                .entry(run.clone())
                .or_default() += 1;
        }
    }
}

/// Counters outside the lock: they change on every call, including calls that
/// never reach the ledger.
#[derive(Debug, Default)]
pub struct Traffic {
    pub api_calls: AtomicU64,
    pub injected_errors: AtomicU64,
    pub unauthorized: AtomicU64,
    pub webhook_events: AtomicU64,
    pub webhook_deliveries: AtomicU64,
    pub webhook_attempts: AtomicU64,
    pub webhooks_delivered: AtomicU64,
    pub webhooks_abandoned: AtomicU64,
    pub webhooks_dropped: AtomicU64,
}

impl Traffic {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn to_json(&self) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "api_calls": get(&self.api_calls),
            "injected_errors": get(&self.injected_errors),
            "unauthorized": get(&self.unauthorized),
            "webhooks": {
                "events": get(&self.webhook_events),
                "deliveries": get(&self.webhook_deliveries),
                "attempts": get(&self.webhook_attempts),
                "delivered": get(&self.webhooks_delivered),
                "abandoned": get(&self.webhooks_abandoned),
                "dropped": get(&self.webhooks_dropped),
            },
        })
    }
}

/// The ledger with its idempotency rule.
#[derive(Debug, Default)]
pub struct Store {
    ledger: Mutex<Ledger>,
}

impl Store {
    pub fn with<T>(&self, f: impl FnOnce(&mut Ledger) -> T) -> T {
        let mut ledger = self
            .ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut ledger)
    }

    /// Runs `handler` once per idempotency key: a repeat with the same
    /// fingerprint gets the stored response (and sends no events), a repeat
    /// with other parameters gets Stripe's `idempotency_error`. Returns the
    /// outcome and whether it was replayed.
    pub fn idempotent(
        &self,
        key: Option<&str>,
        fingerprint: String,
        handler: impl FnOnce(&mut Ledger) -> Outcome,
    ) -> (Outcome, bool) {
        self.with(|ledger| {
            let Some(key) = key else {
                return (handler(ledger), false);
            };
            if let Some(stored) = ledger.idempotency.get(key) {
                if stored.fingerprint != fingerprint {
                    let outcome = Outcome::error(
                        StatusCode::BAD_REQUEST,
                        "idempotency_error",
                        None,
                        format!(
                            "Keys for idempotent requests can only be used with the same parameters \
                             they were first used with. Try using a key other than '{key}'."
                        ),
                    );
                    return (outcome, false);
                }
                let replay = Outcome {
                    status: stored.status,
                    body: stored.body.clone(),
                    events: Vec::new(),
                };
                ledger.counts.idempotent_replays += 1;
                return (replay, true);
            }
            let outcome = handler(ledger);
            // As at Stripe, a request refused by parameter validation never
            // started executing: its key stays free for a corrected request.
            let validation_error = outcome.status == StatusCode::BAD_REQUEST
                && outcome
                    .body
                    .pointer("/error/code")
                    .and_then(Value::as_str)
                    .is_some_and(|code| code.starts_with("parameter_"));
            if validation_error {
                return (outcome, false);
            }
            ledger.idempotency.insert(
                key.to_owned(),
                StoredResponse {
                    fingerprint,
                    status: outcome.status,
                    body: outcome.body.clone(),
                },
            );
            (outcome, false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_executes_once_and_replays_its_response() {
        let store = Store::default();
        let mut executions = 0;
        for _ in 0..3 {
            let (outcome, _) = store.idempotent(Some("k1"), "POST /x a=1".into(), |_| {
                executions += 1;
                Outcome::ok(json!({"n": executions})).with_event("e", json!({}))
            });
            assert_eq!(outcome.body, json!({"n": 1}));
        }
        assert_eq!(executions, 1);
        store.with(|l| assert_eq!(l.counts.idempotent_replays, 2));
    }

    #[test]
    fn a_parameter_error_leaves_the_key_free() {
        let store = Store::default();
        store.idempotent(Some("k1"), "POST /x".into(), |_| {
            Outcome::invalid("parameter_missing", "amount")
        });
        let (outcome, replayed) = store.idempotent(Some("k1"), "POST /x amount=1".into(), |_| {
            Outcome::ok(json!({"ok": 1}))
        });
        assert!(!replayed);
        assert_eq!(outcome.body, json!({"ok": 1}));
    }

    #[test]
    fn a_key_reused_with_other_parameters_is_refused() {
        let store = Store::default();
        store.idempotent(Some("k1"), "POST /x a=1".into(), |_| Outcome::ok(json!({})));
        let (outcome, replayed) = store.idempotent(Some("k1"), "POST /x a=2".into(), |_| {
            Outcome::ok(json!({"second": true}))
        });
        assert!(!replayed);
        assert_eq!(outcome.status, StatusCode::BAD_REQUEST);
        assert_eq!(outcome.body["error"]["type"], "idempotency_error");
    }

    #[test]
    fn switches_change_only_what_is_given_and_refuse_bad_rates() {
        let mut switches = Switches::default();
        switches
            .apply(SwitchesPatch {
                error_rate: Some(0.5),
                duplicate_deliveries: Some(0),
                ..Default::default()
            })
            .expect("valid");
        assert_eq!(switches.error_rate, 0.5);
        assert_eq!(switches.duplicate_deliveries, 1, "at least one delivery");
        assert_eq!(switches.latency_ms, 0);
        let before = switches.clone();
        assert!(
            switches
                .apply(SwitchesPatch {
                    latency_ms: Some(5),
                    lost_response_rate: Some(1.5),
                    ..Default::default()
                })
                .is_err()
        );
        assert_eq!(switches, before, "a refused patch changes nothing");
    }
}
