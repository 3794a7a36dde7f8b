//! The OpenAPI document's frame. Paths are added by `router.rs` as routes are
//! registered, so the document cannot miss a route.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
