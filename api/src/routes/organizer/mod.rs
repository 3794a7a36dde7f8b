//! `/v1/organizer`: an organizer's own view of what they sell.

pub mod events;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events::list_organizer_events))
}
