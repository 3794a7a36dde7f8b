//! `DELETE /v1/events/{id}`: discard a draft.

use axum::extract::State;
use axum::http::StatusCode;
use boxoffice_models::events::{self, StatusChange};
use uuid::Uuid;

use super::support::{Organizer, managed_event};
use crate::cache;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::Path;
use crate::state::AppState;

/// Deletes a draft with its ticket types and coupons. Published events are
/// cancelled instead, never deleted.
#[utoipa::path(delete, path = "/events/{id}", tag = "events",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`event_not_draft`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_event(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> AppResult<StatusCode> {
    let mut conn = state.conn().await?;
    managed_event(&mut conn, &user, id).await?;
    match events::delete_draft(&mut conn, id).await? {
        StatusChange::Done(_) => {}
        StatusChange::NotFound => return Err(AppError::not_found("event")),
        StatusChange::WrongStatus(status) => {
            return Err(AppError::conflict(
                "event_not_draft",
                format!(
                    "only a draft can be deleted; this event is {} (cancel it instead)",
                    status.as_str()
                ),
            )
            .with("event_status", status.as_str()));
        }
    }
    drop(conn);
    cache::invalidate_event(&state, id).await;
    Ok(StatusCode::NO_CONTENT)
}
