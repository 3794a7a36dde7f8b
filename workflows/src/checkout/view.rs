//! What the buyer sees of a checkout: what the frontend needs next, nothing internal.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{CheckoutState, Phase, participant_detail};
use crate::engine::{ErrorView, RunError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaymentView {
    pub intent_id: String,
    /// Hand to the provider's client library to pay.
    pub client_secret: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The last decline of the buyer's card (e.g. `insufficient_funds`): the
    /// checkout goes on, and another card may be tried until `expires_at`.
    pub last_error: Option<ErrorView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckoutView {
    /// When the held tickets are let go if unpaid.
    pub expires_at: Option<DateTime<Utc>>,
    /// Present while the run waits for the payment.
    pub payment: Option<PaymentView>,
    pub booking_id: Option<Uuid>,
    pub ticket_ids: Vec<Uuid>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    /// Why the run did not complete (when compensated, failed or cancelled):
    /// a stable code (`sold_out`, `expired`, `cancelled`, `coupon_invalid`,
    /// `payment_unavailable`, `payment_mismatch`, `sold_out_refunded`,
    /// `coupon_used_up_refunded`, `event_cancelled`, ...) and a plain sentence,
    /// never the payment provider's own text.
    pub error: Option<ErrorView>,
}

impl CheckoutView {
    pub fn of(state: &CheckoutState) -> Self {
        let payment = state
            .payment
            .as_ref()
            .filter(|_| state.phase == Phase::AwaitingPayment)
            .map(|p| PaymentView {
                intent_id: p.intent_id.clone(),
                client_secret: p.client_secret.clone(),
                amount_minor: p.amount_minor,
                currency: p.currency.clone(),
                last_error: p.last_error.as_ref().map(participant_error),
            });
        CheckoutView {
            expires_at: state.expires_at,
            payment,
            booking_id: state.booking_id,
            ticket_ids: state.ticket_ids.clone(),
            amount_minor: state.currency.is_some().then(|| state.total_minor()),
            currency: state.currency.clone(),
            error: state.error.as_ref().map(participant_error),
        }
    }
}

fn participant_error(error: &RunError) -> ErrorView {
    ErrorView {
        code: error.code.clone(),
        detail: participant_detail(error),
    }
}
