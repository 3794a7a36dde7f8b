//! The payment provider's vocabulary, shared by every kind that moves money
//! (checkout, refund): the remote commands and what they report. The adapter
//! in `workers` speaks it to the provider.

use serde::{Deserialize, Serialize};

use crate::engine::RemoteEffect;

/// Signals from the provider's webhooks.
pub const SIGNAL_PAYMENT_SUCCEEDED: &str = "payment_succeeded";
pub const SIGNAL_PAYMENT_FAILED: &str = "payment_failed";
pub use crate::provider_signals::SIGNAL_REFUND_UPDATED;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentCommand {
    CreatePaymentIntent {
        key: String,
        amount_minor: i64,
        currency: String,
    },
    CancelPaymentIntent {
        key: String,
        intent_id: String,
    },
    /// Refund `amount_minor` of the intent's charge. A new `key` is a new
    /// refund at the provider; the same key replays the first answer.
    RefundPayment {
        key: String,
        intent_id: String,
        amount_minor: i64,
    },
    /// Ask how a refund stands (its webhook may have been lost).
    RetrieveRefund {
        key: String,
        refund_id: String,
    },
}

impl RemoteEffect for PaymentCommand {
    fn key(&self) -> &str {
        match self {
            PaymentCommand::CreatePaymentIntent { key, .. }
            | PaymentCommand::CancelPaymentIntent { key, .. }
            | PaymentCommand::RefundPayment { key, .. }
            | PaymentCommand::RetrieveRefund { key, .. } => key,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            PaymentCommand::CreatePaymentIntent { .. } => "create_payment_intent",
            PaymentCommand::CancelPaymentIntent { .. } => "cancel_payment_intent",
            PaymentCommand::RefundPayment { .. } => "refund_payment",
            PaymentCommand::RetrieveRefund { .. } => "retrieve_refund",
        }
    }
}

/// How a refund stands at the provider. Only `Succeeded` gave the money back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    RequiresAction,
    Succeeded,
    Failed,
    Canceled,
}

impl RefundStatus {
    pub fn parse(s: &str) -> Option<RefundStatus> {
        Some(match s {
            "pending" => RefundStatus::Pending,
            "requires_action" => RefundStatus::RequiresAction,
            "succeeded" => RefundStatus::Succeeded,
            "failed" => RefundStatus::Failed,
            "canceled" => RefundStatus::Canceled,
            _ => return None,
        })
    }

    /// The provider will not change its mind.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RefundStatus::Succeeded | RefundStatus::Failed | RefundStatus::Canceled
        )
    }
}

/// A refund as the provider reported it (answer or webhook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundReport {
    pub refund_id: String,
    pub status: RefundStatus,
    pub amount_minor: i64,
    /// The provider's reason code when it failed (`expired_or_canceled_card`, ...).
    #[serde(default)]
    pub failure_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentOutcome {
    IntentCreated {
        intent_id: String,
        client_secret: String,
    },
    IntentCancelled,
    /// The provider refused to cancel: the payment went through first.
    IntentAlreadySucceeded,
    /// A refund was created or looked up.
    Refund(RefundReport),
}
