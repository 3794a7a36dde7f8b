//! `/v1/organizer`: an organizer's own view of what they sell: events with
//! sales figures, an event's analytics, and its attendee and order exports.

pub mod analytics;
pub mod events;
pub mod exports;
pub mod figures;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events::list_organizer_events))
        .routes(routes!(analytics::event_analytics))
        .routes(routes!(exports::attendees_csv))
        .routes(routes!(exports::orders_csv))
}
