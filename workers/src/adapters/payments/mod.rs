//! The payment provider, as the workflows see it.
//!
//! [`PaymentProvider`] is the trait a workflow step calls; [`StripeClient`]
//! speaks a Stripe-compatible HTTP API (the real one, or `boxoffice sandbox`);
//! [`Breaker`] wraps any provider in a `failsafe` circuit breaker shared by
//! every caller in the process.
//!
//! # Concepts
//! - **One attempt per call.** A provider call makes exactly one HTTP request.
//!   Retrying (with backoff and jitter) is the job runner's business: the
//!   step's apalis job is retried, and every create, cancel and refund carries
//!   an idempotency key derived from run id + step, so a retry after a lost
//!   answer returns the first answer instead of charging twice.
//! - **Errors say what to do.** [`ProviderError::Retryable`]: network errors,
//!   timeouts, 409 (a concurrent request with the same idempotency key), 429,
//!   5xx, and the breaker's "circuit open". [`ProviderError::Fatal`]: every
//!   other 4xx (bad parameters, bad key, an intent in the wrong state, a refund
//!   larger than what is left): retrying would get the same answer.
//! - **Codes for workflows, text for operators.** [`ProviderError::code`] is a
//!   stable code from a closed list ([`ErrorCode`]) that a workflow may store
//!   and show; the error's `Display` carries the provider's own text for logs
//!   and operators only, never for participants.
//! - **A refund is money back only when it says so.** [`Refund::status`] is
//!   Stripe's: `pending` (and `requires_action`) is not a success yet, and
//!   `failed` or `canceled` is no refund at all; its webhooks, or
//!   [`PaymentProvider::retrieve_refund`] when a webhook is lost, tell the end.
//! - **Cancelling a paid intent is not an error.** The provider refuses to
//!   cancel a succeeded intent; [`CancelOutcome::AlreadySucceeded`] tells the
//!   workflow that the money arrived after all (it then confirms or refunds).

mod breaker;
mod stripe;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use breaker::{Breaker, BreakerConfig, BreakerState};
pub use stripe::{STRIPE_API_VERSION, StripeClient, StripeConfig};

/// What a provider call returns.
pub type ProviderResult<'a, T> = BoxFuture<'a, Result<T, ProviderError>>;

/// A payment provider. Dyn-compatible: workers hold an `Arc<dyn PaymentProvider>`.
pub trait PaymentProvider: Send + Sync {
    /// Creates a payment intent the buyer then pays with its client secret.
    fn create_intent(&self, request: CreateIntent) -> ProviderResult<'_, PaymentIntent>;

    /// Cancels an unpaid intent. A cancelled intent stays cancelled (cancelling
    /// again is [`CancelOutcome::Cancelled`]); a succeeded one cannot be
    /// cancelled: [`CancelOutcome::AlreadySucceeded`].
    fn cancel_intent<'a>(
        &'a self,
        intent_id: &'a str,
        idempotency_key: &'a str,
    ) -> ProviderResult<'a, CancelOutcome>;

    /// Refunds (part of) a succeeded intent. The answer's status may be
    /// `pending`: the refund is done only once it is `succeeded`.
    fn refund(&self, request: CreateRefund) -> ProviderResult<'_, Refund>;

    /// Reads a refund's current state (when its webhook is late or lost).
    fn retrieve_refund<'a>(&'a self, refund_id: &'a str) -> ProviderResult<'a, Refund>;

    /// Reads an intent's current state.
    fn retrieve_intent<'a>(&'a self, intent_id: &'a str) -> ProviderResult<'a, PaymentIntent>;
}

/// Shared providers are providers (so `Breaker<Arc<dyn PaymentProvider>>` works).
impl<P: PaymentProvider + ?Sized> PaymentProvider for Arc<P> {
    fn create_intent(&self, request: CreateIntent) -> ProviderResult<'_, PaymentIntent> {
        (**self).create_intent(request)
    }
    fn cancel_intent<'a>(
        &'a self,
        intent_id: &'a str,
        idempotency_key: &'a str,
    ) -> ProviderResult<'a, CancelOutcome> {
        (**self).cancel_intent(intent_id, idempotency_key)
    }
    fn refund(&self, request: CreateRefund) -> ProviderResult<'_, Refund> {
        (**self).refund(request)
    }
    fn retrieve_refund<'a>(&'a self, refund_id: &'a str) -> ProviderResult<'a, Refund> {
        (**self).retrieve_refund(refund_id)
    }
    fn retrieve_intent<'a>(&'a self, intent_id: &'a str) -> ProviderResult<'a, PaymentIntent> {
        (**self).retrieve_intent(intent_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateIntent {
    /// In the currency's minor unit (cents); positive.
    pub amount_minor: i64,
    /// ISO 4217, upper case (`EUR`); sent lower case, as Stripe expects.
    pub currency: String,
    /// Same key → same intent, however often the step runs.
    pub idempotency_key: String,
    /// Sent as `metadata[key]=value`; webhooks carry it back (`run_id` finds the run).
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    /// Handed to the buyer's browser to pay; never logged.
    pub client_secret: Option<String>,
    pub status: IntentStatus,
    pub amount_minor: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    pub metadata: BTreeMap<String, String>,
}

/// Stripe's payment intent statuses (`canceled` is Stripe's spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
    /// A status this client does not know yet; treat as "not paid".
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The intent is cancelled (now, or it already was): it will never be paid.
    Cancelled,
    /// The buyer paid before the cancel arrived: the money is ours to keep or refund.
    AlreadySucceeded,
}

/// What `POST /v1/refunds` is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRefund {
    /// The succeeded intent whose charge is refunded.
    pub intent_id: String,
    /// In the charge's currency's minor unit; positive. `None` refunds what is
    /// left of the charge.
    pub amount_minor: Option<i64>,
    /// Sent as `metadata[run_id]`: the refund's webhooks carry it back and find
    /// the run waiting for them.
    pub run_id: String,
    pub reason: Option<RefundReason>,
    /// Same key → same refund (and the same answer, errors included, for at
    /// least 24 hours): a retry after a lost answer keeps its key, a new attempt
    /// after a failure needs a new one.
    pub idempotency_key: String,
}

/// The reasons Stripe accepts for a refund (anything else is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    Duplicate,
    Fraudulent,
    RequestedByCustomer,
}

impl RefundReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundReason::Duplicate => "duplicate",
            RefundReason::Fraudulent => "fraudulent",
            RefundReason::RequestedByCustomer => "requested_by_customer",
        }
    }
}

/// A refund as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub status: RefundStatus,
    pub amount_minor: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    /// The intent refunded (Stripe leaves it out only for refunds of other kinds
    /// of payment, which Boxoffice does not make).
    pub payment_intent: Option<String>,
    /// Why a `failed` refund failed, in Stripe's words (`expired_or_canceled_card`,
    /// `lost_or_stolen_card`, `declined`, …): for operators.
    pub failure_reason: Option<String>,
}

/// Stripe's refund statuses (`canceled` is Stripe's spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// The money is on its way back.
    Succeeded,
    /// Not settled yet: a webhook (or asking again) tells how it ends.
    Pending,
    /// The buyer has to do something (some payment methods): still not settled.
    RequiresAction,
    /// The refund did not happen; the money is still ours.
    Failed,
    /// Cancelled before it settled; the money is still ours.
    Canceled,
}

impl RefundStatus {
    /// `Some(true)`: refunded for good; `Some(false)`: it will never be a
    /// refund; `None`: not settled yet.
    pub fn settled(self) -> Option<bool> {
        match self {
            RefundStatus::Succeeded => Some(true),
            RefundStatus::Failed | RefundStatus::Canceled => Some(false),
            RefundStatus::Pending | RefundStatus::RequiresAction => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Pending => "pending",
            RefundStatus::RequiresAction => "requires_action",
            RefundStatus::Failed => "failed",
            RefundStatus::Canceled => "canceled",
        }
    }
}

/// What went wrong, as a stable code a workflow may keep and show (the
/// provider's own text is in the error's `Display`, for operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Unreachable, slow, overloaded, failing, or the breaker is open: retry.
    ProviderUnavailable,
    /// The charge has nothing left to refund.
    ChargeAlreadyRefunded,
    /// The refund is larger than what is left of the charge.
    AmountTooLarge,
    /// The payment cannot be refunded (not paid, disputed, …).
    PaymentNotRefundable,
    /// The object does not exist at the provider.
    NotFound,
    /// The idempotency key was used before with other parameters.
    IdempotencyKeyReused,
    /// The API key was refused: a configuration error.
    Unauthorized,
    /// Any other refusal (bad parameters, wrong state).
    Refused,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ProviderUnavailable => "provider_unavailable",
            ErrorCode::ChargeAlreadyRefunded => "charge_already_refunded",
            ErrorCode::AmountTooLarge => "amount_too_large",
            ErrorCode::PaymentNotRefundable => "payment_not_refundable",
            ErrorCode::NotFound => "not_found",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Refused => "refused",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a provider call failed, and whether trying again can help. `Display`
/// includes the provider's own text: for logs and operators only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider is unreachable, slow, overloaded or failing: retry later
    /// (with the same idempotency key).
    #[error("payment provider unavailable: {0}")]
    Retryable(String),
    /// The provider refused the request and will refuse it again.
    #[error("payment provider refused the request ({code}): {detail}")]
    Fatal { code: ErrorCode, detail: String },
}

impl ProviderError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProviderError::Retryable(_))
    }

    /// A refusal with the catch-all code.
    pub fn refused(detail: impl Into<String>) -> Self {
        ProviderError::Fatal {
            code: ErrorCode::Refused,
            detail: detail.into(),
        }
    }

    /// The stable code (safe to store and show; no provider text).
    pub fn code(&self) -> ErrorCode {
        match self {
            ProviderError::Retryable(_) => ErrorCode::ProviderUnavailable,
            ProviderError::Fatal { code, .. } => *code,
        }
    }
}
