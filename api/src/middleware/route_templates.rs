//! Which route template (`/v1/events/{id}`) a request's path belongs to, for
//! the metrics' labels, looked up at the edge before the request is routed.
//!
//! The template was read from axum's `MatchedPath` by a route layer. A route
//! layer wraps every route in one more boxed service, and each request kept
//! that box (about 650 bytes) until it was answered: 6.5 MiB of the API's
//! heap at the peak of a 10,000-buyer sale (README, "The answer held in
//! place, the route's name without a route layer"). The edge matches the
//! path against the same templates with `matchit`, the matcher axum's router
//! is built on, so both agree on which template a path belongs to.

use std::sync::Arc;

/// The templates of every route the API serves.
pub struct RouteTemplates(matchit::Router<Arc<str>>);

impl RouteTemplates {
    /// `templates` are the router's own paths, written as axum takes them.
    ///
    /// # Panics
    ///
    /// If two templates conflict, which axum's router refuses too (it panics
    /// when the routes are registered), so an app that routes never gets here.
    pub fn new<'a>(templates: impl IntoIterator<Item = &'a str>) -> Self {
        let mut router = matchit::Router::new();
        // Once each: the OpenAPI document and the extra routes may both name one.
        let templates: std::collections::BTreeSet<&str> = templates.into_iter().collect();
        for template in templates {
            router
                .insert(template, Arc::from(template))
                .unwrap_or_else(|e| panic!("route template {template}: {e}"));
        }
        RouteTemplates(router)
    }

    /// The template `path` matches, or `None` when no route serves it (the
    /// fallback's 404).
    pub fn of(&self, path: &str) -> Option<Arc<str>> {
        self.0.at(path).ok().map(|m| Arc::clone(m.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates() -> RouteTemplates {
        RouteTemplates::new([
            "/readyz",
            "/v1/events",
            "/v1/events/{id}",
            "/v1/events/{id}/publish",
            "/docs/",
            "/docs/{*rest}",
            "/docs/openapi.json",
        ])
    }

    #[test]
    fn a_path_is_labelled_with_the_template_that_routes_it() {
        let t = templates();
        assert_eq!(t.of("/readyz").as_deref(), Some("/readyz"));
        assert_eq!(
            t.of("/v1/events/0193e0b0-7c1a-7000-8000-000000000001")
                .as_deref(),
            Some("/v1/events/{id}")
        );
        assert_eq!(
            t.of("/v1/events/x/publish").as_deref(),
            Some("/v1/events/{id}/publish")
        );
        // A static route wins over the catch-all beside it, as in axum.
        assert_eq!(
            t.of("/docs/openapi.json").as_deref(),
            Some("/docs/openapi.json")
        );
        assert_eq!(
            t.of("/docs/swagger-ui.css").as_deref(),
            Some("/docs/{*rest}")
        );
    }

    #[test]
    fn a_path_no_route_serves_has_no_template() {
        let t = templates();
        assert_eq!(t.of("/v1/nothing"), None);
        assert_eq!(t.of("/v1/events/x/y/z"), None);
        // A trailing slash is another path, for the router as for the label.
        assert_eq!(t.of("/v1/events/"), None);
        assert_eq!(t.of("/readyz/"), None);
    }

    #[test]
    fn a_template_given_twice_is_kept_once() {
        let t = RouteTemplates::new(["/v1/events/{id}", "/v1/events/{id}"]);
        assert_eq!(t.of("/v1/events/1").as_deref(), Some("/v1/events/{id}"));
    }
}
