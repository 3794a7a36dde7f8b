//! The OpenAPI document's frame. Paths are added by `router.rs` as routes are
//! registered, so the document cannot miss a route; then
//! [`document_shared_errors`] adds to every operation the errors it shares
//! with the others.

use utoipa::openapi::RefOr;
use utoipa::openapi::content::Content;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, Responses};
use utoipa::openapi::schema::Ref;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::PROBLEM_JSON;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Boxoffice API",
        description = "Event ticketing built as durable workflows. Errors are \
                       application/problem+json (RFC 9457) with a stable `code`."
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::error::Problem)),
    tags(
        (name = "auth", description = "Registration, login, tokens"),
        (name = "me", description = "The signed-in user"),
        (name = "admin", description = "User and role management, audit log, analytics across events"),
        (name = "venues", description = "Places where events happen"),
        (name = "events", description = "Browse and search events; organizers create, change, publish and cancel theirs"),
        (name = "ticket-types", description = "What an event sells: prices (integer minor units) and capacity"),
        (name = "coupons", description = "Discount codes of an event, and what a code would take off an order"),
        (name = "organizer", description = "An organizer's events with sales figures, an event's analytics, attendee and order exports (CSV)"),
        (name = "webhooks", description = "Signed events from the payment provider that resume waiting workflows"),
        (name = "checkout", description = "Checkouts, workflow status, bookings"),
        (name = "waitlist", description = "Waitlists of sold-out ticket types: join, offers that hold tickets until a deadline, accept or decline; organizers see and prioritise them"),
        (name = "tickets", description = "The ticket signing key, and checking tickets in at the door"),
        (name = "operations", description = "Health, readiness, metrics; operator tools: dead letters, runs, queue health, ledger audit (admins only)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// An error any operation of a kind answers with, whatever its handler does.
struct SharedError {
    status: &'static str,
    code: &'static str,
    says: &'static str,
}

/// [`crate::extract::Path`] could not parse a path parameter.
const INVALID_PATH: SharedError = SharedError {
    status: "400",
    code: "invalid_path",
    says: "a path parameter is not of its type",
};
/// [`crate::extract::Query`] could not parse the query string.
const INVALID_QUERY: SharedError = SharedError {
    status: "400",
    code: "invalid_query",
    says: "a query parameter is unknown or not of its type",
};
/// The rejections of [`crate::extract::Json`].
const MALFORMED_JSON: SharedError = SharedError {
    status: "400",
    code: "malformed_json",
    says: "the body is not JSON",
};
const UNSUPPORTED_MEDIA_TYPE: SharedError = SharedError {
    status: "415",
    code: "unsupported_media_type",
    says: "the body is not sent as `application/json`",
};
const INVALID_BODY: SharedError = SharedError {
    status: "422",
    code: "invalid_body",
    says: "the body does not have the request's shape (a field missing, unknown or of the wrong type)",
};
/// The body limit (`BOXOFFICE_BODY_LIMIT_BYTES`), on every body.
const PAYLOAD_TOO_LARGE: SharedError = SharedError {
    status: "413",
    code: "payload_too_large",
    says: "the body is larger than the limit",
};
/// [`crate::auth::AuthUser`]: a route that names the bearer scheme refuses a
/// missing (where it is required), malformed, expired or revoked token.
const UNAUTHORIZED: SharedError = SharedError {
    status: "401",
    code: "unauthorized",
    says: "no valid access token",
};
/// [`crate::rate_limit::RateLimitLayer`], on every route it does not exempt.
const RATE_LIMITED: SharedError = SharedError {
    status: "429",
    code: "rate_limited",
    says: "too many requests from this address or user; `Retry-After` says when to try again",
};

/// Operations that read their body as bytes, not through
/// [`crate::extract::Json`]: the webhook checks its signature over the raw
/// body before parsing it, so a body that is not JSON is a `malformed_event`.
const RAW_BODIES: [&str; 1] = ["/v1/webhooks/stripe"];

/// Adds to every operation the errors it answers with because of what it
/// takes (path and query parameters, a JSON body, a token) and of the layers
/// around it, whatever its handler does: so a route documents its own errors
/// only, and a new route cannot forget these. Where the route already
/// describes the status, the shared code is added to its description.
pub(crate) fn document_shared_errors(openapi: &mut utoipa::openapi::OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for error in shared_errors(path, operation) {
                add(&mut operation.responses, error);
            }
        }
    }
}

fn shared_errors(path: &str, operation: &Operation) -> Vec<&'static SharedError> {
    let mut errors = Vec::new();
    let takes = |place: ParameterIn| {
        operation.parameters.iter().flatten().any(
            |parameter| matches!(parameter, RefOr::T(parameter) if parameter.parameter_in == place),
        )
    };
    if takes(ParameterIn::Path) {
        errors.push(&INVALID_PATH);
    }
    if takes(ParameterIn::Query) {
        errors.push(&INVALID_QUERY);
    }
    if let Some(RefOr::T(body)) = &operation.request_body {
        errors.push(&PAYLOAD_TOO_LARGE);
        if body.content.contains_key("application/json") && !RAW_BODIES.contains(&path) {
            errors.extend([&MALFORMED_JSON, &UNSUPPORTED_MEDIA_TYPE, &INVALID_BODY]);
        }
    }
    let bearer = serde_json::to_value(&operation.security)
        .is_ok_and(|security| security.to_string().contains("\"bearer\""));
    if bearer {
        errors.push(&UNAUTHORIZED);
    }
    if !crate::rate_limit::exempt(path) {
        errors.push(&RATE_LIMITED);
    }
    errors
}

fn add(responses: &mut Responses, error: &SharedError) {
    let mention = format!("`{}`", error.code);
    match responses.responses.get_mut(error.status) {
        Some(RefOr::T(response)) => {
            if !response.description.contains(&mention) {
                response.description =
                    format!("{}; {mention}: {}", response.description, error.says);
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let mut response = Response::new(format!("{mention}: {}", error.says));
            response.content.insert(
                PROBLEM_JSON.to_owned(),
                RefOr::T(Content::new(Some(Ref::from_schema_name("Problem")))),
            );
            responses
                .responses
                .insert(error.status.to_owned(), RefOr::T(response));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn document() -> Value {
        let (_, doc) = crate::router::router_and_openapi();
        serde_json::to_value(&doc).unwrap()
    }

    fn references(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target.clone());
                }
                map.values().for_each(|v| references(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }

    /// A reference to a schema the document does not carry leaves that part
    /// of the operation undescribed to clients and generators alike.
    #[test]
    fn every_reference_in_the_document_resolves() {
        let doc = document();
        let mut found = Vec::new();
        references(&doc, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let pointer = target.strip_prefix('#').expect("a local reference");
            assert!(doc.pointer(pointer).is_some(), "{target} points nowhere");
        }
    }

    #[test]
    fn operations_document_the_errors_of_what_they_take() {
        let doc = document();
        let described = |path: &str, method: &str, status: &str| {
            doc["paths"][path][method]["responses"][status]["description"]
                .as_str()
                .map(str::to_owned)
        };
        let join = ("/v1/events/{id}/waitlist", "post");
        for (status, code) in [
            ("400", "invalid_path"),
            ("400", "malformed_json"),
            ("401", "unauthorized"),
            ("413", "payload_too_large"),
            ("415", "unsupported_media_type"),
            ("422", "invalid_body"),
            ("422", "validation_failed"),
            ("429", "rate_limited"),
        ] {
            let description = described(join.0, join.1, status).unwrap_or_default();
            assert!(
                description.contains(&format!("`{code}`")),
                "{status} of {join:?}: {description}"
            );
        }
        let problem = &doc["paths"][join.0][join.1]["responses"]["415"]["content"];
        assert_eq!(
            problem["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
        // Only what applies: the public listing takes no token and no body,
        // the webhook parses its own body, probes are not rate limited.
        assert!(
            described("/v1/events", "get", "400")
                .unwrap()
                .contains("`invalid_query`")
        );
        assert!(described("/v1/events", "get", "401").is_none());
        assert!(described("/v1/events", "get", "415").is_none());
        assert!(described("/v1/webhooks/stripe", "post", "415").is_none());
        assert!(described("/v1/webhooks/stripe", "post", "413").is_some());
        assert!(described("/healthz", "get", "429").is_none());
    }
}
