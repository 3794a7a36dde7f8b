//! Stripe's bodies as this client sends and reads them: the forms of the
//! requests that change something, and the objects and errors of its answers.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::super::{
    CreateIntent, CreateRefund, ErrorCode, IntentStatus, PaymentIntent, ProviderError, Refund,
    RefundStatus,
};

#[derive(Debug, Default, Deserialize)]
pub(super) struct ErrorEnvelope {
    #[serde(default)]
    pub(super) error: StripeError,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct StripeError {
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) code: Option<String>,
    pub(super) message: Option<String>,
    /// Stripe includes the intent in `payment_intent_unexpected_state` errors.
    pub(super) payment_intent: Option<WireIntent>,
}

#[derive(Debug, Deserialize)]
pub(super) struct WireIntent {
    pub(super) id: String,
    client_secret: Option<String>,
    pub(super) status: IntentStatus,
    amount: i64,
    currency: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

impl From<WireIntent> for PaymentIntent {
    fn from(w: WireIntent) -> Self {
        PaymentIntent {
            id: w.id,
            client_secret: w.client_secret,
            status: w.status,
            amount_minor: w.amount,
            currency: w.currency.to_ascii_uppercase(),
            metadata: w.metadata,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct WireRefund {
    id: String,
    /// Read as text: a status this client does not know is "not settled yet"
    /// (the run asks again later), not an unreadable answer.
    status: Option<String>,
    amount: i64,
    currency: String,
    payment_intent: Option<String>,
    failure_reason: Option<String>,
}

impl From<WireRefund> for Refund {
    fn from(w: WireRefund) -> Self {
        let status = match w.status.as_deref() {
            Some("succeeded") => RefundStatus::Succeeded,
            Some("pending") => RefundStatus::Pending,
            Some("requires_action") => RefundStatus::RequiresAction,
            Some("failed") => RefundStatus::Failed,
            Some("canceled") => RefundStatus::Canceled,
            other => {
                tracing::warn!(payment.refund_id = %w.id, refund.status = ?other, "unknown refund status; taken as pending");
                RefundStatus::Pending
            }
        };
        Refund {
            id: w.id,
            status,
            amount_minor: w.amount,
            currency: w.currency.to_ascii_uppercase(),
            payment_intent: w.payment_intent,
            failure_reason: w.failure_reason,
        }
    }
}

/// Ids go into URL paths: anything but Stripe's id alphabet is refused before
/// it can change the path.
pub(super) fn checked_id(id: &str) -> Result<&str, ProviderError> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(id)
    } else {
        Err(ProviderError::Fatal {
            code: ErrorCode::NotFound,
            detail: format!("malformed object id {id:?}"),
        })
    }
}

/// The form of `POST /v1/refunds`.
pub(super) fn refund_form(request: &CreateRefund) -> Result<Vec<(String, String)>, ProviderError> {
    let mut form = vec![(
        "payment_intent".to_owned(),
        checked_id(&request.intent_id)?.to_owned(),
    )];
    if let Some(amount) = request.amount_minor {
        form.push(("amount".to_owned(), amount.to_string()));
    }
    form.push(("metadata[run_id]".to_owned(), request.run_id.clone()));
    if let Some(reason) = request.reason {
        form.push(("reason".to_owned(), reason.as_str().to_owned()));
    }
    Ok(form)
}

/// The form of `POST /v1/payment_intents`.
pub(super) fn create_form(request: &CreateIntent) -> Vec<(String, String)> {
    let mut form = vec![
        ("amount".to_owned(), request.amount_minor.to_string()),
        ("currency".to_owned(), request.currency.to_ascii_lowercase()),
        (
            "automatic_payment_methods[enabled]".to_owned(),
            "true".to_owned(),
        ),
    ];
    form.extend(
        request
            .metadata
            .iter()
            .map(|(k, v)| (format!("metadata[{k}]"), v.clone())),
    );
    form
}
