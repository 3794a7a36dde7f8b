//! Stripe's refund events, in the refund workflow's words: each refund an
//! event tells about becomes one [`SIGNAL_REFUND_UPDATED`] signal of the run
//! named by the refund's `metadata.run_id`. Pure code: the route stores what
//! this returns.
//!
//! - `refund.updated`, `refund.failed`, `charge.refund.updated`: the object is
//!   the refund.
//! - `charge.refunded`: the object is the charge; the refunds it lists (when
//!   its `refunds` are included) that carry a `run_id` are the ones meant. The
//!   charge's own `metadata.run_id` names the checkout that took the payment,
//!   not a refund, so it is not used.

use boxoffice_workflows::provider_signals::SIGNAL_REFUND_UPDATED;
use serde_json::{Value, json};
use uuid::Uuid;

/// The event types read here.
pub const REFUND_EVENT_TYPES: [&str; 4] = [
    "charge.refunded",
    "charge.refund.updated",
    "refund.updated",
    "refund.failed",
];

/// One refund's news for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundSignal {
    /// Always [`SIGNAL_REFUND_UPDATED`].
    pub name: &'static str,
    /// `None`: the refund names no run of ours.
    pub run_id: Option<Uuid>,
    pub refund_id: String,
    pub payload: Value,
}

/// `None` when `kind` is not a refund event; otherwise the refunds it tells
/// about (empty when the object holds none).
pub fn refund_signals(kind: &str, object: &Value) -> Option<Vec<RefundSignal>> {
    let refunds: Vec<&Value> = match kind {
        "refund.updated" | "refund.failed" | "charge.refund.updated" => vec![object],
        "charge.refunded" => object
            .pointer("/refunds/data")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter(|r| run_of(r).is_some()).collect())
            .unwrap_or_default(),
        _ => return None,
    };
    Some(refunds.into_iter().filter_map(signal_of).collect())
}

fn run_of(refund: &Value) -> Option<&str> {
    refund.pointer("/metadata/run_id").and_then(Value::as_str)
}

fn signal_of(refund: &Value) -> Option<RefundSignal> {
    let refund_id = refund.get("id").and_then(Value::as_str)?.to_owned();
    // Expanded, `payment_intent` is the intent itself.
    let intent = refund.get("payment_intent");
    let intent_id = intent
        .and_then(|i| i.get("id"))
        .or(intent)
        .and_then(Value::as_str);
    let payload = json!({
        "refund_id": refund_id,
        "status": refund.get("status").and_then(Value::as_str),
        "amount_minor": refund.get("amount").and_then(Value::as_i64),
        "currency": refund.get("currency").and_then(Value::as_str).map(str::to_ascii_uppercase),
        "payment_intent": intent_id,
        "failure_reason": refund.get("failure_reason").and_then(Value::as_str),
    });
    Some(RefundSignal {
        name: SIGNAL_REFUND_UPDATED,
        run_id: run_of(refund).and_then(|s| Uuid::parse_str(s).ok()),
        refund_id,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "0190e0a0-0000-7000-8000-000000000009";

    fn refund(id: &str, status: &str, run: Option<&str>) -> Value {
        let mut refund = json!({
            "id": id, "object": "refund", "amount": 700, "currency": "eur",
            "payment_intent": "pi_1", "status": status, "failure_reason": null,
            "metadata": {},
        });
        if let Some(run) = run {
            refund["metadata"]["run_id"] = json!(run);
        }
        refund
    }

    #[test]
    fn refund_events_become_one_signal_with_the_refund_payload() {
        let mut failed = refund("re_1", "failed", Some(RUN));
        failed["failure_reason"] = json!("expired_or_canceled_card");
        for kind in ["refund.updated", "refund.failed", "charge.refund.updated"] {
            let signals = refund_signals(kind, &failed).expect("a refund event");
            assert_eq!(signals.len(), 1, "{kind}");
            assert_eq!(signals[0].name, "refund_updated");
            assert_eq!(signals[0].run_id, Some(Uuid::parse_str(RUN).expect("uuid")));
            assert_eq!(
                signals[0].payload,
                json!({
                    "refund_id": "re_1", "status": "failed", "amount_minor": 700,
                    "currency": "EUR", "payment_intent": "pi_1",
                    "failure_reason": "expired_or_canceled_card",
                })
            );
        }
    }

    #[test]
    fn a_charge_refunded_signals_the_listed_refunds_that_name_a_run() {
        let other_run = "0190e0a0-0000-7000-8000-00000000000a";
        let charge = json!({
            "id": "ch_1", "object": "charge", "payment_intent": "pi_1",
            // The checkout's run: never taken for a refund's.
            "metadata": {"run_id": "0190e0a0-0000-7000-8000-0000000000ff"},
            "refunds": {"object": "list", "data": [
                refund("re_1", "succeeded", Some(RUN)),
                refund("re_2", "pending", None),
                refund("re_3", "pending", Some(other_run)),
            ]},
        });
        let signals = refund_signals("charge.refunded", &charge).expect("a refund event");
        let told: Vec<(&str, String)> = signals
            .iter()
            .map(|s| {
                (
                    s.refund_id.as_str(),
                    s.run_id.map(|r| r.to_string()).unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            told,
            [("re_1", RUN.to_owned()), ("re_3", other_run.to_owned())]
        );
        assert_eq!(signals[0].payload["status"], "succeeded");

        // Without its refunds listed, a charge tells no refund.
        let bare = json!({"id": "ch_1", "object": "charge", "metadata": {"run_id": RUN}});
        assert_eq!(refund_signals("charge.refunded", &bare), Some(Vec::new()));
    }

    #[test]
    fn other_events_are_not_refund_events_and_bad_run_ids_name_no_run() {
        assert_eq!(refund_signals("payment_intent.succeeded", &json!({})), None);
        let signals = refund_signals(
            "refund.updated",
            &refund("re_1", "succeeded", Some("order-7")),
        )
        .expect("a refund event");
        assert_eq!(signals[0].run_id, None);
        let mut expanded = refund("re_2", "succeeded", Some(RUN));
        expanded["payment_intent"] = json!({"id": "pi_9", "object": "payment_intent"});
        let signals = refund_signals("refund.updated", &expanded).expect("a refund event");
        assert_eq!(signals[0].payload["payment_intent"], "pi_9");
        for kind in REFUND_EVENT_TYPES {
            assert!(refund_signals(kind, &json!({})).is_some(), "{kind}");
        }
    }
}
