//! `GET /v1/me/notifications` and `POST /v1/me/notifications/{id}/read`: the
//! email Boxoffice decided to send the caller, as a list they can read back.
//! Only the caller's own notifications exist here: another participant's id
//! is answered 404, like one that does not exist.

use axum::extract::State;
use boxoffice_models::notifications::{self, Notification};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path, Query};
use crate::routes::admin::cursor;
use crate::state::AppState;

/// A notification as its participant sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub id: Uuid,
    /// `booking_confirmation`, `reminder`, `organizer_message`, …
    pub kind: String,
    pub subject: String,
    pub body_text: String,
    pub created_at: DateTime<Utc>,
    /// `pending` (not sent yet), `sent`, or `failed` (the address refused it).
    pub status: String,
    pub sent_at: Option<DateTime<Utc>>,
    /// When the caller marked it read; `null`: unread.
    pub read_at: Option<DateTime<Utc>>,
}

impl From<&Notification> for NotificationView {
    fn from(n: &Notification) -> Self {
        NotificationView {
            id: n.id,
            kind: n.kind.clone(),
            subject: n.subject.clone(),
            body_text: n.body_text.clone(),
            created_at: n.created_at,
            status: n.status.clone(),
            sent_at: n.sent_at,
            read_at: n.read_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationPage {
    /// Newest first.
    pub items: Vec<NotificationView>,
    pub next_cursor: Option<String>,
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/me/notifications", tag = "me",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of notifications", body = NotificationPage),
        (status = 400, description = "`invalid_cursor`, `invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_notifications(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<ListQuery>,
) -> AppResult<Json<NotificationPage>> {
    let limit = i64::from(cursor::page_limit(query.limit)?);
    // Ids are time-ordered: the id of the previous page's last row is the key.
    let before = cursor::decode_param::<Uuid>(query.cursor.as_deref())?.map(|(_, id)| id);
    let mut conn = state.conn().await?;
    let rows = notifications::list_for_user(&mut conn, auth.user_id, before, limit + 1).await?;
    let has_more = rows.len() as i64 > limit;
    let items: Vec<NotificationView> = rows
        .iter()
        .take(limit as usize)
        .map(NotificationView::from)
        .collect();
    let next_cursor = if has_more {
        items.last().map(|n| cursor::encode(n.created_at, n.id))
    } else {
        None
    };
    Ok(Json(NotificationPage { items, next_cursor }))
}

/// Marks one of the caller's notifications read (again: no change).
#[utoipa::path(post, path = "/me/notifications/{id}/read", tag = "me",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The notification id")),
    responses(
        (status = 200, description = "The notification, read", body = NotificationView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such notification of the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn read_notification(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<NotificationView>> {
    let mut conn = state.conn().await?;
    let read = notifications::mark_read(&mut conn, auth.user_id, id)
        .await?
        .ok_or_else(|| AppError::not_found("notification"))?;
    Ok(Json(NotificationView::from(&read)))
}
