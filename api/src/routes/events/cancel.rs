//! `POST /v1/events/{id}/cancel`: call off a published event.

use axum::extract::State;
use axum::http::HeaderMap;
use boxoffice_models::events::{self, StatusChange};
use uuid::Uuid;

use super::support::{Organizer, managed_event};
use super::{Audience, EventView, event_view, version_headers};
use crate::cache;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::state::AppState;

/// Cancels a published event: it leaves the listing and stops selling. (For now
/// only the status changes; refunding its bookings arrives with the refund
/// workflow.) A draft is deleted rather than cancelled.
#[utoipa::path(post, path = "/events/{id}/cancel", tag = "events",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 200, description = "The cancelled event", body = EventView),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`event_not_published`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel_event(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> AppResult<(HeaderMap, Json<EventView>)> {
    let mut conn = state.conn().await?;
    managed_event(&mut conn, &user, id).await?;
    let event = match events::cancel(&mut conn, id).await? {
        StatusChange::Done(event) => event,
        StatusChange::NotFound => return Err(AppError::not_found("event")),
        StatusChange::WrongStatus(status) => {
            return Err(AppError::conflict(
                "event_not_published",
                format!(
                    "only a published event can be cancelled; this one is {}",
                    status.as_str()
                ),
            )
            .with("event_status", status.as_str()));
        }
    };
    let view = event_view(&mut conn, &event, Audience::Manager).await?;
    drop(conn);
    cache::invalidate_event(&state, id).await;
    Ok((version_headers(event.version), Json(view)))
}
