//! Prometheus request metrics: count by route and status, latency histogram,
//! and one access-log line per request.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;

/// One request being timed, from its arrival to its response.
pub struct Track {
    method: Method,
    /// The route's template (`/v1/events/{id}`), not the raw path: one series
    /// per route. `None` when no route serves the path.
    route: Option<Arc<str>>,
    started: Instant,
}

impl Track {
    pub fn start(request: &Request, route: Option<Arc<str>>) -> Self {
        Track {
            method: request.method().clone(),
            route,
            started: Instant::now(),
        }
    }

    /// Counts and logs the request as `response` answers it.
    pub fn finish(self, response: &Response) {
        let elapsed = self.started.elapsed();
        let route = self.route.as_deref().unwrap_or("unmatched");
        let status = response.status().as_u16();
        let method = self.method.to_string();
        let labels = [
            ("method", method.clone()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        metrics::counter!("http_requests_total", &labels).increment(1);
        metrics::histogram!(
            "http_request_duration_seconds",
            &[("method", method), ("route", route.to_owned())]
        )
        .record(elapsed.as_secs_f64());
        tracing::info!(
            http.route = %route,
            http.status = status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request finished"
        );
    }
}
