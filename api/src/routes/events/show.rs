//! `GET /v1/events/{id}`: an event's details with live availability.

use axum::extract::State;
use boxoffice_models::events::{self, EventStatus};
use boxoffice_models::users::Role;
use uuid::Uuid;

use super::support::{MaybeAuthUser, can_manage};
use super::{Audience, EventView, event_view};
use crate::cache::{self, Scope};
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::state::AppState;

/// An event with its venue and ticket types. `available` is capacity − sold −
/// held, at most a couple of seconds old. Drafts are visible only to whoever
/// manages them (who also see `sold` and `held`); to anyone else they are 404.
#[utoipa::path(get, path = "/events/{id}", tag = "events",
    security((), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 200, description = "The event", body = EventView),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: a token was sent but is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_event(
    State(state): State<AppState>,
    MaybeAuthUser(user): MaybeAuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<EventView>> {
    // Whoever manages the event reads it fresh, drafts and sales figures
    // included; nobody else could, so they skip the lookup.
    if let Some(user) = user
        .as_ref()
        .filter(|u| u.is_admin() || u.has_role(Role::Organizer))
    {
        let mut conn = state.conn().await?;
        if let Some(event) = events::find(&mut conn, id).await?
            && can_manage(user, &event)
        {
            return Ok(Json(
                event_view(&mut conn, &event, Audience::Manager).await?,
            ));
        }
    }
    let view = cache::get_or_load(&state, Scope::Event(id), "public", || async {
        let mut conn = state.conn().await?;
        match events::find(&mut conn, id).await? {
            Some(event) if event.status != EventStatus::Draft => {
                event_view(&mut conn, &event, Audience::Public).await
            }
            _ => Err(AppError::not_found("event")),
        }
    })
    .await?;
    Ok(Json(view))
}
