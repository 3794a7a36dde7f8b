//! The outermost layer: each request's id and span, its metrics, its problem
//! body when it fails, and the security headers, in one future per request.
//!
//! They were four `axum::middleware::from_fn` layers. Each of those boxes a
//! clone of every layer below it (its `Next`) and its own future, per request,
//! and keeps it until the request is answered: with 10,000 buyers' requests
//! in flight, about 90 MiB of the API's memory (README, "The layers in one
//! future"). What these four do before the request is synchronous, so the
//! inner service is called at once and its future awaited in the one boxed
//! future; nothing below is cloned.
//!
//! Of what a request holds while it waits, this future keeps only what the
//! answer needs: the rewrite of an error into a problem is boxed when an
//! error comes, and the layers below are held by a box, so that hyper's task
//! of each request (which keeps a clone of this service until it is called)
//! has room for a pointer to them rather than for all of them (README, "Smaller
//! futures, fewer pages").

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use futures::future::BoxFuture;
use tower::{Layer, Service};
use tracing::Instrument;

use super::metrics::Track;
use super::problem;
use super::request_id;
use super::security_headers::SecurityHeaders;

#[derive(Clone, Copy)]
pub struct EdgeLayer;

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner: Box::new(inner),
        }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: Box<S>,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = request_id::assign(&mut request);
        let span = request_id::span(&id, &request);
        let track = Track::start(&request);
        let headers = SecurityHeaders::for_request(&request);
        let answered = span.in_scope(|| self.inner.call(request));
        // The response leaves the way the four layers sent it: headers, then
        // problem body, then metrics, then the id.
        Box::pin(
            async move {
                let Ok(mut response) = answered.await;
                headers.apply(&mut response);
                let mut response = if problem::is_error(&response) {
                    Box::pin(problem::problem_details(response, &id)).await
                } else {
                    response
                };
                track.finish(&response);
                request_id::echo(&mut response, &id);
                Ok(response)
            }
            .instrument(span),
        )
    }
}
