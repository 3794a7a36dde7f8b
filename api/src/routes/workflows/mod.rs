//! `/v1/workflows/{id}`: what a frontend polls.

pub mod status;
mod view;
mod watch;

pub use watch::RunWatcher;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status::workflow_status))
}
