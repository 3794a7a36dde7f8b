//! Every route of the API, in one list, and the layers around them.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use tower::{Service, ServiceBuilder};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::middleware::edge::EdgeLayer;
use crate::middleware::route_templates::RouteTemplates;
use crate::openapi::ApiDoc;
use crate::rate_limit::RateLimitLayer;
use crate::routes;
use crate::state::AppState;

/// The `/v1` routes. Registering a route here is what puts it in the OpenAPI document.
fn v1_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // Identity and access.
        .merge(routes::auth::router())
        .merge(routes::me::router())
        .merge(routes::unsubscribe::router())
        .merge(routes::admin::router())
        .merge(routes::ops::router())
        // Catalog.
        .merge(routes::venues::router())
        .merge(routes::events::router())
        .merge(routes::ticket_types::router())
        .merge(routes::coupons::router())
        .merge(routes::organizer::router())
        .merge(routes::webhooks::router())
        // Checkout.
        .merge(routes::checkouts::router())
        .merge(routes::workflows::router())
        .merge(routes::bookings::router())
        .merge(routes::waitlist::router())
        // Tickets.
        .merge(routes::tickets::router())
}

/// The operational routes, outside `/v1`.
fn operational_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::health::healthz))
        .routes(routes!(routes::health::readyz))
        .routes(routes!(routes::health::metrics))
}

/// Builds the router and the OpenAPI document describing it.
pub fn router_and_openapi() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/v1", v1_routes())
        .merge(operational_routes())
        .split_for_parts();
    crate::openapi::document_shared_errors(&mut openapi);
    (router, openapi)
}

/// The OpenAPI document as JSON, for clients and tools.
const OPENAPI_JSON: &str = "/openapi.json";
/// The Swagger UI, and the document it shows.
const DOCS: &str = "/docs";
const DOCS_OPENAPI_JSON: &str = "/docs/openapi.json";

/// The routes the OpenAPI document does not describe, as the router has them:
/// the document itself, and the Swagger UI (`SwaggerUi` routes its prefix,
/// the prefix with a slash, and every path below it).
const UNDOCUMENTED_ROUTES: [&str; 5] = [
    OPENAPI_JSON,
    DOCS,
    "/docs/",
    "/docs/{*rest}",
    DOCS_OPENAPI_JSON,
];

/// The whole application: routes, OpenAPI document and UI, and every layer.
///
/// The layers wrap the router once, as one service, rather than each route
/// (`Router::layer`, where every layer boxes each route again and each request
/// clones every one of those boxes): fewer allocations per request, and 18–20 %
/// more status reads per second of the API's CPU (README, "Benchmark"). No
/// layer is a route layer either: the metrics' route template is looked up at
/// the edge (`middleware::route_templates`).
pub fn app(
    state: AppState,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ Sync
+ 'static {
    let config = state.config.clone();
    let (router, openapi) = router_and_openapi();
    let templates = RouteTemplates::new(
        openapi
            .paths
            .paths
            .keys()
            .map(String::as_str)
            .chain(UNDOCUMENTED_ROUTES),
    );
    let openapi_json = serde_json::to_string(&openapi).expect("the OpenAPI document serialises");

    let routes = router
        .route(
            OPENAPI_JSON,
            axum::routing::get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    openapi_json.clone(),
                )
            }),
        )
        .merge(utoipa_swagger_ui::SwaggerUi::new(DOCS).url(DOCS_OPENAPI_JSON, openapi))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state.clone());
    // Outermost first.
    ServiceBuilder::new()
        .layer(EdgeLayer::new(templates))
        .layer(cors(&config.cors_origins))
        // Per-IP and per-user limits (Redis); inside CORS so preflights are free.
        .layer(RateLimitLayer::new(&state))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .service(routes)
}

fn cors(origins: &[String]) -> CorsLayer {
    // `ops` refuses `*` at start (credentials are allowed); a configuration
    // built in code that has it anyway gets no wildcard rather than a panic.
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter(|o| o.as_str() != "*")
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-request-id"),
        ])
        .allow_credentials(!origins.is_empty())
        .max_age(Duration::from_secs(600))
}
