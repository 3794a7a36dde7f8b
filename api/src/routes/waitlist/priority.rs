//! `PATCH /v1/events/{id}/waitlist/{entry_id}`: move an entry between tiers.

use axum::extract::State;
use boxoffice_models::waitlist;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{EntryView, not_found};
use crate::auth::AuthUser;
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Path};
use crate::routes::events::support::managed_event;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Vip,
    Standard,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityRequest {
    pub priority: Priority,
}

/// Sets an entry's tier: vip entries are served before standard ones, each
/// tier by join time. For the event's organizer and admins.
#[utoipa::path(patch, path = "/events/{id}/waitlist/{entry_id}", tag = "waitlist",
    security(("bearer" = [])),
    request_body = PriorityRequest,
    params(
        ("id" = Uuid, Path, description = "The event id"),
        ("entry_id" = Uuid, Path, description = "The waitlist entry id"),
    ),
    responses(
        (status = 200, description = "The entry with its tier", body = EntryView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event of yours, or no such entry of it", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: priority must be `vip` or `standard`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_priority(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((event_id, entry_id)): Path<(Uuid, Uuid)>,
    Json(req): Json<PriorityRequest>,
) -> AppResult<Json<EntryView>> {
    let mut conn = state.conn().await?;
    managed_event(&mut conn, &auth, event_id).await?;
    let priority = match req.priority {
        Priority::Vip => "vip",
        Priority::Standard => "standard",
    };
    let entry = waitlist::set_priority(&mut conn, event_id, entry_id, priority)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(EntryView::with_position(&mut conn, &entry).await?))
}
