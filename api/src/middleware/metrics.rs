//! Prometheus request metrics: count by route and status, latency histogram,
//! and one access-log line per request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Copied from the request into the response by [`tag_route`], so the outer
/// layer can label by route template (`/v1/events/{id}`) and not by raw path.
#[derive(Clone)]
struct RouteTemplate(String);

/// Runs inside routing (as a route layer), where the matched path is known.
pub async fn tag_route(request: Request, next: Next) -> Response {
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let mut response = next.run(request).await;
    if let Some(t) = template {
        response.extensions_mut().insert(RouteTemplate(t));
    }
    response
}

pub async fn track(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let route = response
        .extensions()
        .get::<RouteTemplate>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16();
    let labels = [
        ("method", method.to_string()),
        ("route", route.clone()),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!(
        "http_request_duration_seconds",
        &[("method", method.to_string()), ("route", route.clone())]
    )
    .record(elapsed.as_secs_f64());
    tracing::info!(
        http.route = %route,
        http.status = status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request finished"
    );
    response
}
