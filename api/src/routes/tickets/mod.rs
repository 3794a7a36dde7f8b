//! Tickets at the door.
//!
//! - `GET /v1/tickets/public-key` (public): the Ed25519 key that signs every
//!   ticket's QR payload, so a scanner can verify tickets offline.
//! - `POST /v1/events/{id}/check-in` (the event's organizer, or an admin):
//!   verifies a scanned payload and admits its ticket once.

pub mod check_in;
pub mod public_key;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(public_key::ticket_public_key))
        .routes(routes!(check_in::check_in))
}
