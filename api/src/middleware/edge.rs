//! The outermost layer: each request's id and span, its metrics, its problem
//! body when it fails, and the security headers, in one future per request.
//!
//! They were four `axum::middleware::from_fn` layers. Each of those boxes a
//! clone of every layer below it (its `Next`) and its own future, per request,
//! and keeps it until the request is answered: with 10,000 buyers' requests
//! in flight, about 90 MiB of the API's memory (README, "The layers in one
//! future"). What these four do before the request is synchronous, so the
//! inner service is called at once and its future awaited in the one future
//! this layer returns ([`Answering`]); nothing below is cloned.
//!
//! Of what a request holds while it waits, this future keeps only what the
//! answer needs: the rewrite of an error into a problem is boxed when an
//! error comes, and the layers below are held by a box, so that hyper's task
//! of each request (which keeps a clone of this service until it is called)
//! has room for a pointer to them rather than for all of them (README, "Smaller
//! futures, fewer pages"). The future itself is not boxed: hyper's task holds
//! it in place.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::extract::Request;
use axum::response::Response;
use futures::future::BoxFuture;
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Span;

use super::metrics::Track;
use super::problem;
use super::request_id;
use super::route_templates::RouteTemplates;
use super::security_headers::SecurityHeaders;

#[derive(Clone)]
pub struct EdgeLayer {
    routes: Arc<RouteTemplates>,
}

impl EdgeLayer {
    /// `routes`: the templates the router serves, for the metrics' labels.
    pub fn new(routes: RouteTemplates) -> Self {
        EdgeLayer {
            routes: Arc::new(routes),
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner: Box::new(inner),
            routes: Arc::clone(&self.routes),
        }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: Box<S>,
    routes: Arc<RouteTemplates>,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answering<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = request_id::assign(&mut request);
        let span = request_id::span(&id, &request);
        let track = Track::start(&request, self.routes.of(request.uri().path()));
        let headers = SecurityHeaders::for_request(&request);
        let answered = span.in_scope(|| self.inner.call(request));
        Answering {
            stage: Stage::Routing { answered },
            way_out: Some(WayOut { id, track, headers }),
            span,
        }
    }
}

pin_project! {
    /// A request's answer, from the routes to the client. Written out rather
    /// than an `async` block: a block that awaits the future it captured
    /// keeps room for it twice (as captured and as awaited), 616 bytes each
    /// in a debug build. Nor is it boxed: hyper's task of the request holds
    /// it (README, "The answer held in place").
    pub struct Answering<F> {
        #[pin]
        stage: Stage<F>,
        way_out: Option<WayOut>,
        // Entered on every poll and on drop, as `Instrument` would.
        span: Span,
    }

    impl<F> PinnedDrop for Answering<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let _entered = this.span.enter();
            // What the routes drop, a request given up on, is logged in its span.
            let mut stage = this.stage;
            stage.set(Stage::Done);
        }
    }
}

pin_project! {
    #[project = StageProj]
    enum Stage<F> {
        /// The layers below and the routes answer.
        Routing {
            #[pin]
            answered: F,
        },
        /// An error's answer being rewritten into a problem, boxed: only an
        /// error needs room for it.
        Rewriting {
            rewrite: BoxFuture<'static, Response>,
        },
        Done,
    }
}

/// What the answer gets on its way out.
struct WayOut {
    id: String,
    track: Track,
    headers: SecurityHeaders,
}

impl WayOut {
    /// The response leaves the way the four layers sent it: headers, then
    /// problem body, then metrics, then the id.
    async fn rewrite(self, response: Response) -> Response {
        let response = problem::problem_details(response, &self.id).await;
        self.finish(response)
    }

    fn finish(self, mut response: Response) -> Response {
        self.track.finish(&response);
        request_id::echo(&mut response, &self.id);
        response
    }
}

impl<F> Future for Answering<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let mut stage = this.stage;
        loop {
            let rewrite = match stage.as_mut().project() {
                StageProj::Routing { answered } => {
                    let Ok(mut response) = ready!(answered.poll(cx));
                    let way_out = this.way_out.take().expect("an answer leaves once");
                    way_out.headers.apply(&mut response);
                    if !problem::is_error(&response) {
                        stage.set(Stage::Done);
                        return Poll::Ready(Ok(way_out.finish(response)));
                    }
                    Box::pin(way_out.rewrite(response))
                }
                StageProj::Rewriting { rewrite } => {
                    let response = ready!(rewrite.as_mut().poll(cx));
                    stage.set(Stage::Done);
                    return Poll::Ready(Ok(response));
                }
                StageProj::Done => panic!("an answer polled after it was given"),
            };
            stage.set(Stage::Rewriting { rewrite });
        }
    }
}
