//! `DELETE /v1/venues/{id}`: remove a venue no event uses.

use axum::extract::State;
use axum::http::StatusCode;
use boxoffice_models::venues;
use uuid::Uuid;

use crate::error::{AppError, AppResult, Problem};
use crate::extract::Path;
use crate::routes::events::support::{Organizer, db_error};
use crate::state::AppState;

/// Deletes a venue (its creator or an admin), unless an event still uses it.
#[utoipa::path(delete, path = "/venues/{id}", tag = "venues",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Venue id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not the venue's creator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`venue_in_use`: an event takes place there", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_venue(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> AppResult<StatusCode> {
    let mut conn = state.conn().await?;
    let venue = venues::find(&mut conn, id)
        .await?
        .ok_or_else(|| AppError::not_found("venue"))?;
    super::ensure_may_edit(&user, &venue)?;
    // The events' foreign key decides (race-free) whether the venue is still used.
    if !venues::delete(&mut conn, id).await.map_err(db_error)? {
        return Err(AppError::not_found("venue"));
    }
    Ok(StatusCode::NO_CONTENT)
}
