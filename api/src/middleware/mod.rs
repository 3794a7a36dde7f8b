//! Cross-cutting layers, applied in `router::app` (outermost first): the edge
//! (request id and span, metrics, problem bodies, security headers), then CORS,
//! the rate limits, the timeout and the body limit.

pub mod edge;
pub mod metrics;
pub mod problem;
pub mod request_id;
pub mod route_templates;
pub mod security_headers;
