//! Security headers on every response. The API serves JSON only, so the content
//! policy forbids everything; the interactive docs at `/docs` need scripts and
//! styles of their own origin, and get a policy that allows just that.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const DOCS_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
                        style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";

/// The headers a request's response gets: its content policy depends on
/// what was asked for.
#[derive(Clone, Copy)]
pub struct SecurityHeaders {
    is_docs: bool,
}

impl SecurityHeaders {
    pub fn for_request(request: &Request) -> Self {
        SecurityHeaders {
            is_docs: request.uri().path().starts_with("/docs"),
        }
    }

    pub fn apply(self, response: &mut Response) {
        let h = response.headers_mut();
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        );
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(if self.is_docs { DOCS_CSP } else { API_CSP }),
        );
        if !h.contains_key(header::CACHE_CONTROL) {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
}
