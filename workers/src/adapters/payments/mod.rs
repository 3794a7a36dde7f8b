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
//!   other 4xx (bad parameters, bad key, an intent in the wrong state): retrying
//!   would get the same answer.
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
pub use stripe::{StripeClient, StripeConfig};

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

    /// Refunds a succeeded intent, in full (`None`) or in part.
    fn refund<'a>(
        &'a self,
        intent_id: &'a str,
        amount_minor: Option<i64>,
        idempotency_key: &'a str,
    ) -> ProviderResult<'a, Refund>;

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
    fn refund<'a>(
        &'a self,
        intent_id: &'a str,
        amount_minor: Option<i64>,
        idempotency_key: &'a str,
    ) -> ProviderResult<'a, Refund> {
        (**self).refund(intent_id, amount_minor, idempotency_key)
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub status: RefundStatus,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    RequiresAction,
    Succeeded,
    Failed,
    Canceled,
    #[serde(other)]
    Unknown,
}

/// Why a provider call failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider is unreachable, slow, overloaded or failing: retry later
    /// (with the same idempotency key).
    #[error("payment provider unavailable: {0}")]
    Retryable(String),
    /// The provider refused the request and will refuse it again.
    #[error("payment provider refused the request: {0}")]
    Fatal(String),
}

impl ProviderError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProviderError::Retryable(_))
    }
}
