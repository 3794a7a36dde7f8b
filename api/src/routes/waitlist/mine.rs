//! `GET /v1/me/waitlist`: the participant's waitlist entries.

use axum::extract::State;
use boxoffice_models::waitlist;
use serde::Serialize;

use super::EntryView;
use crate::auth::AuthUser;
use crate::error::{AppResult, Problem};
use crate::extract::Json;
use crate::state::AppState;

/// More entries than anyone keeps: the newest are shown.
const MAX_ENTRIES: i64 = 200;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyWaitlist {
    /// Newest first.
    pub items: Vec<EntryView>,
}

/// The caller's waitlist entries, newest first: status, position (units
/// waited for ahead of a waiting entry) and the offer, when one was made.
#[utoipa::path(get, path = "/me/waitlist", tag = "waitlist",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's entries", body = MyWaitlist),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn my_waitlist(
    State(state): State<AppState>,
    auth: AuthUser,
) -> AppResult<Json<MyWaitlist>> {
    let mut conn = state.conn().await?;
    let entries = waitlist::for_participant(&mut conn, auth.user_id, MAX_ENTRIES).await?;
    let mut items = Vec::with_capacity(entries.len());
    for entry in &entries {
        items.push(EntryView::with_position(&mut conn, entry).await?);
    }
    Ok(Json(MyWaitlist { items }))
}
