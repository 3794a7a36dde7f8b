//! Accepts a well-formed `X-Request-Id` or generates one, echoes it, and opens
//! the span that carries it into every log line of the request.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's correlation id, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The client's id when it is well formed, else a new one; put in the
/// request's extensions ([`RequestId`]) for the handlers, and returned.
pub fn assign(request: &mut Request) -> String {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    id
}

/// The span of the request with id `id`: every log line within names it.
pub fn span(id: &str, request: &Request) -> tracing::Span {
    tracing::info_span!(
        "http.request",
        request_id = %id,
        http.method = %request.method(),
        http.path = %request.uri().path(),
    )
}

/// Echoes the id in the response, for the client to quote.
pub fn echo(response: &mut Response, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
}
