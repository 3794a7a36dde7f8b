//! `/v1/checkouts`: starting the checkout workflow, and the buyer's cancel.

mod batch_trace;
pub mod cancel;
pub mod gathered;
mod limits;
mod new_checkout;
pub mod sale_terms;
pub mod start;
mod taken_in;
mod validate;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start::start_checkout))
        .routes(routes!(cancel::cancel_checkout))
}
