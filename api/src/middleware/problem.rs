//! Every error response leaves as `application/problem+json` with the request id.
//!
//! Handlers return [`crate::error::AppError`]; layers and the router (405, 408,
//! 413, 404) answer with bare statuses, which are turned into problems here so a
//! client sees one error shape everywhere.

use axum::body::{Body, to_bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;

use crate::error::{PROBLEM_JSON, problem, problem_response};

/// Problem bodies are small; anything larger is passed through untouched.
const MAX_PROBLEM_BODY: usize = 64 * 1024;

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "route_not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    }
}

/// Whether `response` is an error, which [`problem_details`] rewrites.
pub fn is_error(response: &Response) -> bool {
    let status = response.status();
    status.is_client_error() || status.is_server_error()
}

/// `response` as a problem when it is an error: a bare status gets a problem
/// body, a problem body gets the request's id; anything else is left alone.
pub async fn problem_details(response: Response, request_id: &str) -> Response {
    if !is_error(&response) {
        return response;
    }
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    let is_problem = content_type.starts_with(PROBLEM_JSON.as_bytes());
    // A JSON body a handler chose to send with an error status (the readiness
    // report) is already structured: leave it as it is.
    if content_type.starts_with(b"application/json") {
        return response;
    }

    let (mut parts, body) = response.into_parts();
    if !is_problem {
        let detail = match status {
            StatusCode::NOT_FOUND => "no such route".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED => "this route does not accept that method".to_owned(),
            other => other.canonical_reason().unwrap_or("error").to_lowercase(),
        };
        let mut body = problem(status, code_for(status), detail);
        body.extra.insert("request_id".into(), request_id.into());
        let mut fresh = problem_response(status, &body);
        // Keep headers such as Allow, Retry-After and the request id.
        for (name, value) in parts.headers.iter() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                fresh.headers_mut().insert(name.clone(), value.clone());
            }
        }
        return fresh;
    }

    let Ok(bytes) = to_bytes(body, MAX_PROBLEM_BODY).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("request_id".into(), request_id.into());
            serde_json::to_vec(&map).unwrap_or_else(|_| bytes.to_vec())
        }
        _ => bytes.to_vec(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}
