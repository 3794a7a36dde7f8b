//! A run as its owner sees it: what the frontend needs next, nothing internal.

use boxoffice_models::workflow_runs::Run;
use boxoffice_workflows::checkout::{Checkout, CheckoutState, Phase, participant_detail};
use boxoffice_workflows::engine::{RunError, Workflow};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    pub intent_id: String,
    /// Hand to the provider's client library to pay.
    pub client_secret: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The last decline of the buyer's card (e.g. `insufficient_funds`): the
    /// checkout goes on, and another card may be tried until `expires_at`.
    pub last_error: Option<RunErrorView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunErrorView {
    /// Stable: `sold_out`, `expired`, `cancelled`, `coupon_invalid`,
    /// `payment_unavailable`, `payment_mismatch`, `sold_out_refunded`,
    /// `coupon_used_up_refunded`, ...; for a decline, the card's decline code.
    pub code: String,
    /// A plain sentence (never the payment provider's own text).
    pub detail: String,
}

impl RunErrorView {
    fn of(error: &RunError) -> Self {
        RunErrorView {
            code: error.code.clone(),
            detail: participant_detail(error),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowView {
    pub id: Uuid,
    pub kind: String,
    /// running | waiting | compensating | completed | compensated | failed | cancelled
    pub status: String,
    pub step: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When the held tickets are let go if unpaid.
    pub expires_at: Option<DateTime<Utc>>,
    /// Present while the run waits for the payment.
    pub payment: Option<PaymentView>,
    pub booking_id: Option<Uuid>,
    pub ticket_ids: Vec<Uuid>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    /// Why the run did not complete (when compensated, failed or cancelled).
    pub error: Option<RunErrorView>,
}

impl WorkflowView {
    pub fn of(run: &Run) -> Self {
        let mut view = WorkflowView {
            id: run.id,
            kind: run.kind.clone(),
            status: run.status.clone(),
            step: run.step.clone(),
            version: run.version,
            created_at: run.created_at,
            updated_at: run.updated_at,
            finished_at: run.finished_at,
            expires_at: None,
            payment: None,
            booking_id: None,
            ticket_ids: Vec::new(),
            amount_minor: None,
            currency: None,
            error: None,
        };
        if run.kind == Checkout::KIND
            && let Ok(state) = serde_json::from_value::<CheckoutState>(run.state.clone())
        {
            view.expires_at = state.expires_at;
            view.currency = state.currency.clone();
            view.amount_minor = state.currency.is_some().then(|| state.total_minor());
            view.booking_id = state.booking_id;
            view.ticket_ids = state.ticket_ids.clone();
            if state.phase == Phase::AwaitingPayment
                && let Some(p) = &state.payment
            {
                view.payment = Some(PaymentView {
                    intent_id: p.intent_id.clone(),
                    client_secret: p.client_secret.clone(),
                    amount_minor: p.amount_minor,
                    currency: p.currency.clone(),
                    last_error: p.last_error.as_ref().map(RunErrorView::of),
                });
            }
            view.error = state.error.as_ref().map(RunErrorView::of);
        }
        view
    }
}
