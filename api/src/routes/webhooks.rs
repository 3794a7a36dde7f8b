//! `POST /v1/webhooks/stripe`: the payment provider tells a waiting run what
//! happened to its payment or refund.
//!
//! Order of work, and why:
//! 1. Verify the `Stripe-Signature` over the raw body bytes, before parsing
//!    anything: a bad, missing or stale signature is 400 `invalid_signature`
//!    and changes nothing.
//! 2. Parse the event and map it to a signal of the run named by the intent's
//!    `metadata.run_id` (set when the checkout created the intent), or, for
//!    refund events, by the refund's (`webhooks::refund_events`).
//! 3. Store the signal with the dedupe key `stripe:{event id}` (a
//!    `charge.refunded` may list several refunds: `stripe:{event id}:{refund
//!    id}` each); storing it also queues its delivery to the run, in one
//!    transaction.
//!
//! Every verified event is acknowledged with 200, even when there is nothing to
//! do (a repeat, an event type we don't use, an intent that isn't ours or whose
//! run is gone): the provider retries anything else for days, and retrying
//! cannot make such an event useful. Each of those cases is logged. Only a
//! failure on our side (database down) answers 5xx, so the provider tries again.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use boxoffice_models::workflow_signals::{self, NewSignal, Recorded};
use boxoffice_workflows::checkout::{SIGNAL_PAYMENT_FAILED, SIGNAL_PAYMENT_SUCCEEDED};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{AppError, AppResult, Problem};
use crate::extract::Json;
use crate::state::AppState;
use crate::webhooks::refund_events::{self, RefundSignal};
use crate::webhooks::stripe_signature::{self, SignatureError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stripe_webhook))
}

/// What became of a verified event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookOutcome {
    /// Stored and delivered to its run.
    Recorded,
    /// This event was received before: nothing changed.
    Duplicate,
    /// The intent names a run that does not exist: nothing to do.
    UnknownRun,
    /// The object carries no usable `metadata.run_id` (not one of ours).
    NoRun,
    /// An event type Boxoffice does not act on.
    Ignored,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookAck {
    pub received: bool,
    pub outcome: WebhookOutcome,
}

/// The parts of a Stripe event this route reads.
#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    created: Option<i64>,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: Value,
}

/// A verified event, in the run's vocabulary.
#[derive(Debug, PartialEq)]
struct Mapped {
    signal: &'static str,
    run_id: Option<Uuid>,
    payload: Value,
}

/// Maps the event types a run waits for; `None` for every other type.
fn map_event(event: &Event) -> Option<Mapped> {
    let object = &event.data.object;
    let (signal, intent_id, amount) = match event.kind.as_str() {
        // What was received, which the run checks against its order.
        "payment_intent.succeeded" => (
            SIGNAL_PAYMENT_SUCCEEDED,
            object.get("id"),
            object.get("amount_received").or(object.get("amount")),
        ),
        "payment_intent.payment_failed" => (
            SIGNAL_PAYMENT_FAILED,
            object.get("id"),
            object.get("amount"),
        ),
        _ => return None,
    };
    let run_id = object
        .pointer("/metadata/run_id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok());
    let mut payload = json!({
        "event_id": event.id,
        "event_type": event.kind,
        "intent_id": intent_id.and_then(Value::as_str),
        "amount_minor": amount.and_then(Value::as_i64),
        "currency": object.get("currency").and_then(Value::as_str).map(str::to_ascii_uppercase),
        "event_created": event.created,
    });
    // The decline's codes become what the buyer is told; the provider's message
    // is kept for operators only.
    if signal == SIGNAL_PAYMENT_FAILED {
        for (field, pointer) in [
            ("failure_code", "/last_payment_error/code"),
            ("decline_code", "/last_payment_error/decline_code"),
            ("failure_message", "/last_payment_error/message"),
        ] {
            if let Some(value) = object.pointer(pointer).and_then(Value::as_str) {
                payload[field] = Value::from(value);
            }
        }
    }
    Some(Mapped {
        signal,
        run_id,
        payload,
    })
}

fn invalid_signature(detail: impl Into<String>) -> AppError {
    AppError::bad_request("invalid_signature", detail)
}

/// Receives a Stripe webhook event.
///
/// The body is the event exactly as the provider sent it; the
/// `Stripe-Signature` header (`t=…,v1=…`) must carry a valid HMAC-SHA256 made
/// with one of the configured endpoint secrets within the tolerance (300 s).
/// `payment_intent.succeeded` and `payment_intent.payment_failed` signal the
/// run named in the intent's `metadata.run_id`; `refund.updated`,
/// `refund.failed`, `charge.refund.updated` and `charge.refunded` signal
/// `refund_updated` to the run named in the refund's `metadata.run_id`. Every
/// verified event is acknowledged with 200, including repeats, other event
/// types and events for unknown runs (see `outcome`).
#[utoipa::path(post, path = "/webhooks/stripe", tag = "webhooks",
    params(("Stripe-Signature" = String, Header, description = "`t=<unix time>,v1=<hex HMAC-SHA256 of \"{t}.{body}\">`; several `v1` may be given")),
    request_body(content = Object, content_type = "application/json",
        description = "A Stripe event: `{id, type, created, data: {object: {…}}}`"),
    responses(
        (status = 200, description = "Verified and acknowledged", body = WebhookAck),
        (status = 400, description = "`invalid_signature` (missing, wrong or stale signature) or `malformed_event` (signed, but not an event)",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: the event was not stored; the provider retries",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<(StatusCode, Json<WebhookAck>)> {
    let header = headers
        .get(stripe_signature::HEADER)
        .ok_or_else(|| invalid_signature("the Stripe-Signature header is missing"))?
        .to_str()
        .map_err(|_| invalid_signature("the Stripe-Signature header is not ASCII"))?;
    let now = chrono::Utc::now().timestamp();
    stripe_signature::verify(
        header,
        &body,
        &state.config.stripe_webhook_secrets,
        now,
        state.config.stripe_webhook_tolerance_secs,
    )
    .map_err(|err| {
        if err == SignatureError::NoSecrets {
            tracing::error!("a Stripe webhook arrived but no webhook secret is configured (BOXOFFICE_STRIPE_WEBHOOK_SECRETS)");
        } else {
            tracing::warn!(error = %err, "Stripe webhook refused");
        }
        invalid_signature(err.to_string())
    })?;

    let event: Event = serde_json::from_slice(&body).map_err(|e| {
        tracing::warn!(error = %e, "a correctly signed Stripe webhook is not an event");
        AppError::bad_request(
            "malformed_event",
            format!("the body is not a Stripe event: {e}"),
        )
    })?;
    let ack = |outcome| {
        Ok((
            StatusCode::OK,
            Json(WebhookAck {
                received: true,
                outcome,
            }),
        ))
    };

    if let Some(signals) = refund_events::refund_signals(&event.kind, &event.data.object) {
        return ack(record_refund_signals(&state, &event, signals).await?);
    }
    let Some(mapped) = map_event(&event) else {
        tracing::info!(webhook.event_id = %event.id, webhook.event_type = %event.kind, "Stripe event type not used; acknowledged");
        return ack(WebhookOutcome::Ignored);
    };
    let Some(run_id) = mapped.run_id else {
        tracing::warn!(webhook.event_id = %event.id, webhook.event_type = %event.kind,
            "Stripe event without a metadata.run_id; acknowledged, nothing to do");
        return ack(WebhookOutcome::NoRun);
    };
    let mut conn = state.conn().await?;
    let recorded = workflow_signals::record(
        &mut conn,
        NewSignal {
            run_id,
            name: mapped.signal.to_owned(),
            dedupe_key: format!("stripe:{}", event.id),
            payload: mapped.payload,
        },
    )
    .await?;
    let outcome = match recorded {
        Recorded::New => {
            tracing::info!(webhook.event_id = %event.id, run.id = %run_id, signal = mapped.signal, "webhook signal recorded");
            WebhookOutcome::Recorded
        }
        Recorded::Duplicate => {
            tracing::info!(webhook.event_id = %event.id, run.id = %run_id, "webhook event seen before; acknowledged");
            WebhookOutcome::Duplicate
        }
        Recorded::UnknownRun => {
            tracing::warn!(webhook.event_id = %event.id, run.id = %run_id, "webhook event for an unknown run; acknowledged, nothing to do");
            WebhookOutcome::UnknownRun
        }
    };
    ack(outcome)
}

/// Stores each refund's signal; the outcome is the best of theirs (recorded,
/// else duplicate, else unknown run, else no run).
async fn record_refund_signals(
    state: &AppState,
    event: &Event,
    signals: Vec<RefundSignal>,
) -> AppResult<WebhookOutcome> {
    // One event may list several refunds (a charge's): each gets its own key.
    let per_refund = event.kind == "charge.refunded";
    let mut outcome = WebhookOutcome::NoRun;
    for signal in signals {
        let Some(run_id) = signal.run_id else {
            tracing::warn!(webhook.event_id = %event.id, webhook.event_type = %event.kind, payment.refund_id = %signal.refund_id,
                "refund without a metadata.run_id; acknowledged, nothing to do");
            continue;
        };
        let dedupe_key = if per_refund {
            format!("stripe:{}:{}", event.id, signal.refund_id)
        } else {
            format!("stripe:{}", event.id)
        };
        let mut conn = state.conn().await?;
        let recorded = workflow_signals::record(
            &mut conn,
            NewSignal {
                run_id,
                name: signal.name.to_owned(),
                dedupe_key,
                payload: signal.payload,
            },
        )
        .await?;
        let this = match recorded {
            Recorded::New => {
                tracing::info!(webhook.event_id = %event.id, run.id = %run_id, payment.refund_id = %signal.refund_id, signal = signal.name, "webhook signal recorded");
                WebhookOutcome::Recorded
            }
            Recorded::Duplicate => {
                tracing::info!(webhook.event_id = %event.id, run.id = %run_id, "webhook event seen before; acknowledged");
                WebhookOutcome::Duplicate
            }
            Recorded::UnknownRun => {
                tracing::warn!(webhook.event_id = %event.id, run.id = %run_id, "refund event for an unknown run; acknowledged, nothing to do");
                WebhookOutcome::UnknownRun
            }
        };
        outcome = best(outcome, this);
    }
    if outcome == WebhookOutcome::NoRun {
        tracing::info!(webhook.event_id = %event.id, webhook.event_type = %event.kind, "refund event naming no run; acknowledged");
    }
    Ok(outcome)
}

fn best(a: WebhookOutcome, b: WebhookOutcome) -> WebhookOutcome {
    let rank = |o: WebhookOutcome| match o {
        WebhookOutcome::Recorded => 0,
        WebhookOutcome::Duplicate => 1,
        WebhookOutcome::UnknownRun => 2,
        WebhookOutcome::NoRun | WebhookOutcome::Ignored => 3,
    };
    if rank(b) < rank(a) { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, object: Value) -> Event {
        serde_json::from_value(json!({"id": "evt_1", "type": kind, "created": 1_700_000_000, "data": {"object": object}}))
            .expect("an event")
    }

    const RUN: &str = "0190e0a0-0000-7000-8000-000000000001";

    #[test]
    fn payment_intent_events_signal_the_run_in_the_metadata() {
        let object = json!({"id": "pi_1", "amount": 2500, "currency": "eur", "status": "succeeded", "metadata": {"run_id": RUN}});
        let mapped = map_event(&event("payment_intent.succeeded", object.clone())).expect("mapped");
        assert_eq!(mapped.signal, SIGNAL_PAYMENT_SUCCEEDED);
        assert_eq!(mapped.run_id, Some(Uuid::parse_str(RUN).expect("uuid")));
        assert_eq!(mapped.payload["intent_id"], "pi_1");
        assert_eq!(mapped.payload["amount_minor"], 2500);
        assert_eq!(mapped.payload["currency"], "EUR");
        assert_eq!(mapped.payload["event_created"], 1_700_000_000);

        let failed = map_event(&event("payment_intent.payment_failed", object)).expect("mapped");
        assert_eq!(failed.signal, SIGNAL_PAYMENT_FAILED);
    }

    #[test]
    fn a_success_carries_the_amount_received_and_a_decline_its_codes() {
        let paid = json!({"id": "pi_1", "amount": 2500, "amount_received": 1, "currency": "usd", "metadata": {"run_id": RUN}});
        let mapped = map_event(&event("payment_intent.succeeded", paid)).expect("mapped");
        assert_eq!(mapped.payload["amount_minor"], 1);
        assert_eq!(mapped.payload["currency"], "USD");

        let declined = json!({"id": "pi_1", "amount": 2500, "currency": "eur", "metadata": {"run_id": RUN},
            "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."}});
        let mapped = map_event(&event("payment_intent.payment_failed", declined)).expect("mapped");
        assert_eq!(mapped.payload["failure_code"], "card_declined");
        assert_eq!(mapped.payload["decline_code"], "insufficient_funds");
        assert_eq!(
            mapped.payload["failure_message"],
            "Your card has insufficient funds."
        );
    }

    #[test]
    fn other_types_are_not_mapped_and_bad_run_ids_are_none() {
        assert_eq!(
            map_event(&event("customer.created", json!({"id": "cus_1"}))),
            None
        );
        let object = json!({"id": "pi_1", "metadata": {"run_id": "not-a-uuid"}});
        let mapped = map_event(&event("payment_intent.succeeded", object)).expect("mapped");
        assert_eq!(mapped.run_id, None);
    }
}
