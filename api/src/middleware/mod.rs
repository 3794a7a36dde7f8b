//! Cross-cutting layers, applied in `router::app` (outermost first):
//! request id and span → metrics → problem bodies → security headers → timeout.

pub mod metrics;
pub mod problem;
pub mod request_id;
pub mod security_headers;
