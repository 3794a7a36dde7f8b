//! What a failed request to Stripe means for the workflow: retry it later
//! (transport errors, 5xx, 429, an idempotency key still in flight, or what
//! `Stripe-Should-Retry` says), or a refusal with our stable code.

use reqwest::StatusCode;

use super::super::{ErrorCode, ProviderError};
use super::wire::StripeError;

/// Why one request failed, before it is classified.
#[derive(Debug)]
pub(super) enum Failure {
    /// No usable answer: connection refused or reset, timeout, unreadable body.
    Transport(String),
    Status {
        status: StatusCode,
        should_retry: Option<bool>,
        error: StripeError,
    },
}

impl Failure {
    pub(super) fn transport(err: reqwest::Error) -> Self {
        let what = if err.is_timeout() {
            "timed out"
        } else if err.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        Failure::Transport(format!("{what}: {err}"))
    }
}

impl From<Failure> for ProviderError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Transport(message) => ProviderError::Retryable(message),
            Failure::Status {
                status,
                should_retry,
                error,
            } => {
                let message = format!(
                    "{} {}/{}: {}",
                    status.as_u16(),
                    error.kind.as_deref().unwrap_or("-"),
                    error.code.as_deref().unwrap_or("-"),
                    error.message.as_deref().unwrap_or("(no message)"),
                );
                let retryable = should_retry.unwrap_or_else(|| retryable_status(status));
                if retryable {
                    ProviderError::Retryable(message)
                } else {
                    ProviderError::Fatal {
                        code: error_code(status, &error),
                        detail: message,
                    }
                }
            }
        }
    }
}

/// 409 is Stripe's "a request with this idempotency key is still in flight":
/// asking again later gets the first request's answer.
fn retryable_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::CONFLICT
}

/// Our stable code for a refusal: Stripe's documented error codes where they
/// say something a workflow acts on, the status otherwise.
fn error_code(status: StatusCode, error: &StripeError) -> ErrorCode {
    match (error.kind.as_deref(), error.code.as_deref()) {
        (_, Some("charge_already_refunded")) => ErrorCode::ChargeAlreadyRefunded,
        (_, Some("amount_too_large")) => ErrorCode::AmountTooLarge,
        (_, Some("charge_disputed" | "payment_intent_unexpected_state")) => {
            ErrorCode::PaymentNotRefundable
        }
        (_, Some("resource_missing")) => ErrorCode::NotFound,
        (Some("idempotency_error"), _) => ErrorCode::IdempotencyKeyReused,
        _ if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN => {
            ErrorCode::Unauthorized
        }
        _ if status == StatusCode::NOT_FOUND => ErrorCode::NotFound,
        _ => ErrorCode::Refused,
    }
}
