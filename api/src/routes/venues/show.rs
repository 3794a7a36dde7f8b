//! `GET /v1/venues/{id}`.

use axum::extract::State;
use boxoffice_models::venues;
use uuid::Uuid;

use super::VenueView;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::state::AppState;

/// One venue.
#[utoipa::path(get, path = "/venues/{id}", tag = "venues",
    params(("id" = Uuid, Path, description = "Venue id")),
    responses(
        (status = 200, description = "The venue", body = VenueView),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_venue(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> AppResult<Json<VenueView>> {
    let mut conn = state.conn().await?;
    let venue = venues::find(&mut conn, id)
        .await?
        .ok_or_else(|| AppError::not_found("venue"))?;
    Ok(Json(VenueView::from(&venue)))
}
