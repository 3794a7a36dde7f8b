//! A client for the subset of Stripe's API that checkout and refunds need:
//! payment intents (create, cancel, retrieve) and refunds.
//!
//! Stripe's conventions, followed here: form-encoded bodies with bracketed keys
//! (`metadata[run_id]=…`), `Authorization: Bearer <secret key>`, an
//! `Idempotency-Key` header on every request that changes something, lower-case
//! currencies, errors as `{"error": {"type", "code", "message", …}}`, and the
//! `Stripe-Should-Retry` response header, which overrides the status-based guess
//! when present. Every request pins the API version ([`STRIPE_API_VERSION`]),
//! so the shapes read here do not change when the account's default does.

mod failure;
mod wire;

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use self::failure::Failure;
use self::wire::{ErrorEnvelope, WireIntent, WireRefund, checked_id, create_form, refund_form};
use super::{
    CancelOutcome, CreateIntent, CreateRefund, ErrorCode, IntentStatus, PaymentIntent,
    PaymentProvider, ProviderError, ProviderResult, Refund,
};

/// The Stripe API version every request is made with (the `Stripe-Version`
/// header). 2024-10-28.acacia is the first version that sends `refund.updated`
/// and `refund.failed` for refunds of card charges, which the refund workflow
/// waits for. Webhook payloads follow the webhook endpoint's own version:
/// create the endpoint with this one. Changing it means reading Stripe's
/// changelog for payment intents, refunds and their events first.
pub const STRIPE_API_VERSION: &str = "2024-10-28.acacia";

/// Where the provider is and how to reach it.
#[derive(Clone)]
pub struct StripeConfig {
    /// `https://api.stripe.com`, or the sandbox's `http://127.0.0.1:PORT`.
    pub api_base: String,
    pub secret_key: String,
    /// Whole-request limit; a request that takes longer is a retryable failure.
    pub timeout: Duration,
}

impl StripeConfig {
    /// A configuration with the default 10 s request timeout.
    pub fn new(api_base: impl Into<String>, secret_key: impl Into<String>) -> Self {
        StripeConfig {
            api_base: api_base.into(),
            secret_key: secret_key.into(),
            timeout: Duration::from_secs(10),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("api_base", &self.api_base)
            .field("secret_key", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The HTTP client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    api_base: String,
    secret_key: String,
}

impl fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeClient")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

impl StripeClient {
    pub fn new(config: StripeConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("boxoffice/", env!("CARGO_PKG_VERSION")))
            // The protocol this client is tested with against the local
            // provider; the binary also carries HTTP/2 (for the API's
            // side), which TLS would otherwise offer to Stripe.
            .http1_only()
            .build()?;
        Ok(StripeClient {
            http,
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            secret_key: config.secret_key,
        })
    }

    /// One request; the answer parsed, or why it failed.
    async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        form: &[(String, String)],
        idempotency_key: Option<&str>,
    ) -> Result<T, Failure> {
        let method_has_body = method == Method::POST;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api_base))
            .bearer_auth(&self.secret_key)
            .header("Stripe-Version", STRIPE_API_VERSION);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if method_has_body {
            // Even an empty form: a POST says what its (empty) body is.
            request = request.form(form);
        }
        let response = request.send().await.map_err(Failure::transport)?;
        let status = response.status();
        let should_retry = response
            .headers()
            .get("stripe-should-retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.eq_ignore_ascii_case("true"));
        let body = response.bytes().await.map_err(Failure::transport)?;
        if status.is_success() {
            // An unreadable success may be a truncated body; the idempotency key
            // makes asking again safe, so this is not fatal.
            serde_json::from_slice(&body).map_err(|e| {
                Failure::Transport(format!("{path}: unreadable {status} response: {e}"))
            })
        } else {
            let error = serde_json::from_slice::<ErrorEnvelope>(&body)
                .map(|e| e.error)
                .unwrap_or_default();
            Err(Failure::Status {
                status,
                should_retry,
                error,
            })
        }
    }
}

impl StripeClient {
    async fn create_intent_impl(
        &self,
        request: CreateIntent,
    ) -> Result<PaymentIntent, ProviderError> {
        let intent: WireIntent = self
            .request(
                Method::POST,
                "/v1/payment_intents",
                &create_form(&request),
                Some(&request.idempotency_key),
            )
            .await?;
        tracing::debug!(payment.intent_id = %intent.id, "payment intent created");
        Ok(intent.into())
    }

    async fn cancel_intent_impl(
        &self,
        intent_id: &str,
        idempotency_key: &str,
    ) -> Result<CancelOutcome, ProviderError> {
        let path = format!("/v1/payment_intents/{}/cancel", checked_id(intent_id)?);
        match self
            .request::<WireIntent>(Method::POST, &path, &[], Some(idempotency_key))
            .await
        {
            Ok(intent) if intent.status == IntentStatus::Succeeded => {
                Ok(CancelOutcome::AlreadySucceeded)
            }
            Ok(_) => Ok(CancelOutcome::Cancelled),
            Err(Failure::Status { status, error, .. })
                if status == StatusCode::BAD_REQUEST
                    && error.code.as_deref() == Some("payment_intent_unexpected_state") =>
            {
                // Either already cancelled (fine: cancelling is idempotent for us)
                // or already paid. The error usually says which; ask otherwise.
                let current = match error.payment_intent {
                    Some(intent) => intent.status,
                    None => self.retrieve_intent_impl(intent_id).await?.status,
                };
                match current {
                    IntentStatus::Succeeded => Ok(CancelOutcome::AlreadySucceeded),
                    IntentStatus::Canceled => Ok(CancelOutcome::Cancelled),
                    // Settles by itself shortly; the next attempt will know.
                    IntentStatus::Processing => Err(ProviderError::Retryable(format!(
                        "payment intent {intent_id} is processing"
                    ))),
                    other => Err(ProviderError::Fatal {
                        code: ErrorCode::Refused,
                        detail: format!(
                            "payment intent {intent_id} cannot be cancelled in state {other:?}: {}",
                            error.message.unwrap_or_default()
                        ),
                    }),
                }
            }
            Err(failure) => Err(failure.into()),
        }
    }

    async fn refund_impl(&self, request: CreateRefund) -> Result<Refund, ProviderError> {
        let form = refund_form(&request)?;
        let refund: WireRefund = self
            .request(
                Method::POST,
                "/v1/refunds",
                &form,
                Some(&request.idempotency_key),
            )
            .await?;
        let refund = Refund::from(refund);
        tracing::debug!(payment.refund_id = %refund.id, refund.status = refund.status.as_str(), "refund created");
        Ok(refund)
    }

    async fn retrieve_refund_impl(&self, refund_id: &str) -> Result<Refund, ProviderError> {
        let path = format!("/v1/refunds/{}", checked_id(refund_id)?);
        let refund: WireRefund = self.request(Method::GET, &path, &[], None).await?;
        Ok(refund.into())
    }

    async fn retrieve_intent_impl(&self, intent_id: &str) -> Result<PaymentIntent, ProviderError> {
        let path = format!("/v1/payment_intents/{}", checked_id(intent_id)?);
        let intent: WireIntent = self.request(Method::GET, &path, &[], None).await?;
        Ok(intent.into())
    }
}

impl PaymentProvider for StripeClient {
    fn create_intent(&self, request: CreateIntent) -> ProviderResult<'_, PaymentIntent> {
        Box::pin(self.create_intent_impl(request))
    }

    fn cancel_intent<'a>(
        &'a self,
        intent_id: &'a str,
        idempotency_key: &'a str,
    ) -> ProviderResult<'a, CancelOutcome> {
        Box::pin(self.cancel_intent_impl(intent_id, idempotency_key))
    }

    fn refund(&self, request: CreateRefund) -> ProviderResult<'_, Refund> {
        Box::pin(self.refund_impl(request))
    }

    fn retrieve_refund<'a>(&'a self, refund_id: &'a str) -> ProviderResult<'a, Refund> {
        Box::pin(self.retrieve_refund_impl(refund_id))
    }

    fn retrieve_intent<'a>(&'a self, intent_id: &'a str) -> ProviderResult<'a, PaymentIntent> {
        Box::pin(self.retrieve_intent_impl(intent_id))
    }
}

#[cfg(test)]
mod tests {
    use super::wire::StripeError;
    use super::*;
    use crate::adapters::payments::RefundStatus;
    use std::collections::BTreeMap;

    fn status_failure(status: u16, should_retry: Option<bool>) -> ProviderError {
        Failure::Status {
            status: StatusCode::from_u16(status).expect("valid status"),
            should_retry,
            error: StripeError::default(),
        }
        .into()
    }

    #[test]
    fn server_errors_rate_limits_and_conflicts_are_retryable_other_4xx_fatal() {
        for status in [500, 502, 503, 429, 409] {
            assert!(status_failure(status, None).is_retryable(), "{status}");
        }
        for status in [400, 401, 402, 403, 404] {
            assert!(!status_failure(status, None).is_retryable(), "{status}");
        }
        assert!(
            Failure::Transport("timed out".into())
                .into_provider_error()
                .is_retryable()
        );
    }

    #[test]
    fn the_should_retry_header_overrides_the_status() {
        assert!(!status_failure(500, Some(false)).is_retryable());
        assert!(status_failure(400, Some(true)).is_retryable());
    }

    #[test]
    fn the_create_form_uses_brackets_and_a_lower_case_currency() {
        let form = create_form(&CreateIntent {
            amount_minor: 2500,
            currency: "EUR".into(),
            idempotency_key: "k".into(),
            metadata: BTreeMap::from([("run_id".to_owned(), "r1".to_owned())]),
        });
        assert!(form.contains(&("amount".into(), "2500".into())));
        assert!(form.contains(&("currency".into(), "eur".into())));
        assert!(form.contains(&("automatic_payment_methods[enabled]".into(), "true".into())));
        assert!(form.contains(&("metadata[run_id]".into(), "r1".into())));
    }

    #[test]
    fn ids_that_would_change_the_path_are_refused() {
        assert!(checked_id("pi_3Nabc123").is_ok());
        for bad in ["", "pi_1/../refunds", "pi 1", "pi_1?x=1"] {
            assert!(
                matches!(checked_id(bad), Err(ProviderError::Fatal { .. })),
                "{bad:?}"
            );
        }
    }

    fn refusal(code: &str, kind: &str) -> ProviderError {
        Failure::Status {
            status: StatusCode::BAD_REQUEST,
            should_retry: None,
            error: StripeError {
                kind: Some(kind.to_owned()),
                code: Some(code.to_owned()),
                message: Some("provider text".to_owned()),
                payment_intent: None,
            },
        }
        .into()
    }

    #[test]
    fn refusals_carry_a_stable_code_and_keep_the_provider_text_for_operators() {
        let cases = [
            ("charge_already_refunded", ErrorCode::ChargeAlreadyRefunded),
            ("amount_too_large", ErrorCode::AmountTooLarge),
            ("charge_disputed", ErrorCode::PaymentNotRefundable),
            ("resource_missing", ErrorCode::NotFound),
            ("parameter_unknown", ErrorCode::Refused),
        ];
        for (stripe_code, code) in cases {
            let err = refusal(stripe_code, "invalid_request_error");
            assert!(!err.is_retryable(), "{stripe_code}");
            assert_eq!(err.code(), code, "{stripe_code}");
            assert!(err.to_string().contains("provider text"), "{err}");
            assert!(!code.as_str().contains("provider"), "{code}");
        }
        let reused = refusal("", "idempotency_error");
        assert_eq!(reused.code(), ErrorCode::IdempotencyKeyReused);
        assert_eq!(
            status_failure(401, None).code(),
            ErrorCode::Unauthorized,
            "a refused key"
        );
        assert_eq!(
            status_failure(503, None).code(),
            ErrorCode::ProviderUnavailable
        );
    }

    #[test]
    fn the_refund_form_names_the_intent_the_amount_the_run_and_the_reason() {
        let mut request = CreateRefund {
            intent_id: "pi_1".into(),
            amount_minor: Some(700),
            run_id: "r1".into(),
            reason: Some(crate::adapters::payments::RefundReason::RequestedByCustomer),
            idempotency_key: "k".into(),
        };
        let form = refund_form(&request).expect("a form");
        assert_eq!(
            form,
            [
                ("payment_intent".to_owned(), "pi_1".to_owned()),
                ("amount".to_owned(), "700".to_owned()),
                ("metadata[run_id]".to_owned(), "r1".to_owned()),
                ("reason".to_owned(), "requested_by_customer".to_owned()),
            ]
        );
        request.amount_minor = None;
        request.reason = None;
        let form = refund_form(&request).expect("a form");
        assert!(!form.iter().any(|(k, _)| k == "amount" || k == "reason"));
        request.intent_id = "pi_1&amount=1".into();
        assert!(refund_form(&request).is_err(), "an id cannot add fields");
    }

    #[test]
    fn unknown_refund_statuses_are_not_settled() {
        let wire: WireRefund = serde_json::from_value(serde_json::json!({
            "id": "re_1", "object": "refund", "amount": 5, "currency": "eur",
            "payment_intent": "pi_1", "status": "something_new", "failure_reason": null,
        }))
        .expect("a refund");
        let refund = Refund::from(wire);
        assert_eq!(refund.status, RefundStatus::Pending);
        assert_eq!(refund.status.settled(), None);
        assert_eq!(refund.currency, "EUR");
    }

    impl Failure {
        fn into_provider_error(self) -> ProviderError {
            self.into()
        }
    }
}
