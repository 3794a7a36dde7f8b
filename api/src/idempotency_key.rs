//! `Idempotency-Key`: required on every route that starts a workflow run.
//!
//! A client that retries a start (a timeout, a double click, a reconnect)
//! must get the run it started, not a second run with a second payment. The
//! key is what tells a retry from a new attempt, so a route that starts a run
//! takes [`IdempotencyKey`] and cannot be called without one. The route then
//! looks the key up among the caller's runs of its kind before starting.
//!
//! In the OpenAPI document, `params(IdempotencyKey)` in the route's
//! `#[utoipa::path]` declares the required header, and [`REQUIRED_RESPONSE`]
//! names the 400 codes.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};

use crate::error::AppError;

pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Longest key accepted, in bytes.
pub const MAX_LEN: usize = 255;

/// The 400 codes every run-starting route documents.
pub const REQUIRED_RESPONSE: &str = "`idempotency_key_required`: no or an empty `Idempotency-Key`; `invalid_idempotency_key`: longer than 255 or not visible ASCII";

/// The caller's key for this attempt: 1 to 255 visible ASCII characters
/// (a UUID is a good choice), the same on every retry of the attempt and
/// new for the next one. Keys are scoped to the signed-in user.
#[derive(Debug, Clone, PartialEq, Eq, utoipa::IntoParams)]
#[into_params(names("Idempotency-Key"), parameter_in = Header)]
pub struct IdempotencyKey(
    /// Required. One key per attempt to start: a retry with the same key and
    /// the same body answers with the run the first request started (the same
    /// key with another body is 422 `idempotency_key_reused`). Missing or
    /// empty: 400 `idempotency_key_required`.
    #[param(
        min_length = 1,
        max_length = 255,
        example = "6f1c2b9e-2d3c-4f4e-9a65-1b7f0f7c9b21"
    )]
    pub String,
);

impl IdempotencyKey {
    /// Checks a header value; `None` is a missing header.
    pub fn parse(value: Option<&HeaderValue>) -> Result<Self, AppError> {
        // HTTP strips a value's surrounding spaces, so blank arrives empty.
        let raw = match value {
            Some(value) if !value.as_bytes().trim_ascii().is_empty() => value,
            _ => return Err(required()),
        };
        raw.to_str()
            .ok()
            .map(str::trim)
            .filter(|k| k.len() <= MAX_LEN && k.bytes().all(|b| b.is_ascii_graphic()))
            .map(|k| IdempotencyKey(k.to_owned()))
            .ok_or_else(|| {
                AppError::bad_request(
                    "invalid_idempotency_key",
                    format!("Idempotency-Key must be 1 to {MAX_LEN} visible ASCII characters"),
                )
                .with("field", "Idempotency-Key")
            })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn required() -> AppError {
    AppError::bad_request(
        "idempotency_key_required",
        "send an Idempotency-Key header: one new key (e.g. a UUID) per attempt, the same key when retrying it",
    )
    .with("field", "Idempotency-Key")
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let mut values = parts.headers.get_all(&IDEMPOTENCY_KEY).iter();
        let first = values.next();
        // Two keys on one request cannot both be the attempt's.
        if values.next().is_some() {
            return Err(AppError::bad_request(
                "invalid_idempotency_key",
                "send one Idempotency-Key",
            )
            .with("field", "Idempotency-Key"));
        }
        IdempotencyKey::parse(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(value: Option<&str>) -> String {
        let value = value.map(|v| HeaderValue::from_bytes(v.as_bytes()).unwrap());
        match IdempotencyKey::parse(value.as_ref()) {
            Ok(key) => format!("ok:{}", key.as_str()),
            Err(AppError::Client { code, .. }) => code.to_owned(),
            Err(other) => panic!("not a client error: {other}"),
        }
    }

    #[test]
    fn missing_or_empty_keys_are_required_and_odd_ones_invalid() {
        assert_eq!(code(None), "idempotency_key_required");
        assert_eq!(code(Some("")), "idempotency_key_required");
        assert_eq!(code(Some("   ")), "idempotency_key_required");
        assert_eq!(code(Some("order-42")), "ok:order-42");
        assert_eq!(code(Some("with space")), "invalid_idempotency_key");
        assert_eq!(code(Some("caf\u{e9}")), "invalid_idempotency_key");
        assert_eq!(
            code(Some(&"k".repeat(MAX_LEN + 1))),
            "invalid_idempotency_key"
        );
        assert!(code(Some(&"k".repeat(MAX_LEN))).starts_with("ok:"));
    }

    /// Every route that starts a run declares the header as required and
    /// its 400.
    #[test]
    fn run_starting_routes_require_the_header_in_the_openapi_document() {
        let (_, doc) = crate::router::router_and_openapi();
        let doc = serde_json::to_value(&doc).unwrap();
        // Each new run-starting route joins this list.
        #[allow(clippy::single_element_loop)]
        for (path, method) in [
            ("/v1/checkouts", "post"),
            ("/v1/bookings/{id}/refunds", "post"),
        ] {
            let op = &doc["paths"][path][method];
            let param = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "Idempotency-Key")
                .unwrap_or_else(|| panic!("{method} {path} lacks Idempotency-Key"));
            assert_eq!(param["in"], "header");
            assert_eq!(param["required"], true, "{method} {path}");
            assert_eq!(param["schema"]["minLength"], 1, "{method} {path}");
            let bad_request = op["responses"]["400"]["description"].as_str().unwrap();
            assert!(
                bad_request.contains("idempotency_key_required"),
                "{method} {path}: {bad_request}"
            );
        }
    }
}
