//! `GET /v1/events/{id}/waitlist`: an event's waitlist, in serving order.

use axum::extract::State;
use boxoffice_models::waitlist::{self, After, Entry};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::EntryView;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path, Query};
use crate::routes::admin::cursor;
use crate::routes::events::support::managed_event;
use crate::state::AppState;

const STATUSES: [&str; 6] = [
    "waiting", "offered", "accepted", "expired", "declined", "left",
];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListWaitlistParams {
    /// Only entries in this status.
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// An entry as the event's organizer sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrganizerEntryView {
    pub participant_id: Uuid,
    /// Since when this entry, first in line, has not fitted in the free units.
    pub blocked_since: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub entry: EntryView,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WaitlistPage {
    /// In serving order: vip first, each tier by join time.
    pub items: Vec<OrganizerEntryView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The event's waitlist entries in serving order (vip first, each tier by
/// join time), every status unless `status` is given. For the event's
/// organizer and admins.
#[utoipa::path(get, path = "/events/{id}/waitlist", tag = "waitlist",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The event id"), ListWaitlistParams),
    responses(
        (status = 200, description = "One page of entries", body = WaitlistPage),
        (status = 400, description = "`invalid_query` or `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event of yours", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_waitlist(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(event_id): Path<Uuid>,
    Query(params): Query<ListWaitlistParams>,
) -> AppResult<Json<WaitlistPage>> {
    let limit = cursor::page_limit(params.limit)?;
    let after = cursor::decode_param::<String>(params.cursor.as_deref())?
        .map(|(joined_at, key)| after_from(joined_at, &key))
        .transpose()?;
    if let Some(status) = params.status.as_deref()
        && !STATUSES.contains(&status)
    {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("status must be one of {}", STATUSES.join(", ")),
        )
        .with("field", "status"));
    }
    let mut conn = state.conn().await?;
    managed_event(&mut conn, &auth, event_id).await?;
    let mut rows = waitlist::for_event(
        &mut conn,
        event_id,
        params.status.as_deref(),
        after,
        i64::from(limit) + 1,
    )
    .await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(cursor_of)
    } else {
        None
    };
    let mut items = Vec::with_capacity(rows.len());
    for entry in &rows {
        items.push(OrganizerEntryView {
            participant_id: entry.participant_id,
            blocked_since: entry.blocked_since,
            entry: EntryView::with_position(&mut conn, entry).await?,
        });
    }
    Ok(Json(WaitlistPage { items, next_cursor }))
}

/// The cursor names the last entry by its place in serving order.
fn cursor_of(entry: &Entry) -> String {
    let tier = if entry.is_vip() { "vip" } else { "standard" };
    cursor::encode(entry.joined_at, format!("{tier}:{}", entry.id))
}

fn after_from(joined_at: DateTime<Utc>, key: &str) -> AppResult<After> {
    let invalid = || {
        AppError::bad_request(
            "invalid_cursor",
            "the cursor is not valid; start from the first page",
        )
        .with("field", "cursor")
    };
    let (tier, id) = key.split_once(':').ok_or_else(invalid)?;
    let vip = match tier {
        "vip" => true,
        "standard" => false,
        _ => return Err(invalid()),
    };
    Ok(After {
        vip,
        joined_at,
        id: id.parse().map_err(|_| invalid())?,
    })
}
