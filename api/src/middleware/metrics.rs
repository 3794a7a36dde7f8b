//! Prometheus request metrics: count by route and status, latency histogram,
//! and one access-log line per request.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

/// Copied from the request into the response by [`TagRoute`], so the outer
/// layer can label by route template (`/v1/events/{id}`) and not by raw path.
#[derive(Clone)]
struct RouteTemplate(MatchedPath);

/// A route layer (it runs inside routing, where the matched path is known):
/// tags each response with its route's template.
#[derive(Clone, Copy)]
pub struct TagRouteLayer;

impl<S> Layer<S> for TagRouteLayer {
    type Service = TagRoute<S>;

    fn layer(&self, inner: S) -> TagRoute<S> {
        TagRoute { inner }
    }
}

#[derive(Clone)]
pub struct TagRoute<S> {
    inner: S,
}

impl<S> Service<Request> for TagRoute<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Tagged<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let template = request.extensions().get::<MatchedPath>().cloned();
        Tagged {
            answer: self.inner.call(request),
            template,
        }
    }
}

pin_project! {
    /// The route's answer, tagged with its template once it is ready. Not
    /// boxed: it lives inside the route's own future, and a box per request
    /// would be held for the whole of it (README, "Smaller futures, fewer pages").
    pub struct Tagged<F> {
        #[pin]
        answer: F,
        template: Option<MatchedPath>,
    }
}

impl<F> Future for Tagged<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = ready!(this.answer.poll(cx));
        if let Some(template) = this.template.take() {
            response.extensions_mut().insert(RouteTemplate(template));
        }
        Poll::Ready(Ok(response))
    }
}

/// One request being timed, from its arrival to its response.
pub struct Track {
    method: Method,
    started: Instant,
}

impl Track {
    pub fn start(request: &Request) -> Self {
        Track {
            method: request.method().clone(),
            started: Instant::now(),
        }
    }

    /// Counts and logs the request as `response` answers it.
    pub fn finish(self, response: &Response) {
        let elapsed = self.started.elapsed();
        let route = response
            .extensions()
            .get::<RouteTemplate>()
            .map_or("unmatched", |r| r.0.as_str());
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
