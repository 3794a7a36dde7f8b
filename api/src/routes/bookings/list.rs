//! `GET /v1/bookings`: the caller's own bookings, newest first.

use axum::extract::State;
use boxoffice_models::bookings;
use serde::{Deserialize, Serialize};

use super::BookingView;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Query};
use crate::routes::admin::cursor::{decode, encode};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BookingPage {
    pub items: Vec<BookingView>,
    pub next_cursor: Option<String>,
}

/// The caller's bookings.
#[utoipa::path(get, path = "/bookings", tag = "checkout",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of bookings", body = BookingPage),
        (status = 400, description = "`invalid_cursor`, `invalid_query`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_bookings(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<ListQuery>,
) -> AppResult<Json<BookingPage>> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(AppError::bad_request("invalid_query", "limit is 1 to 100"));
    }
    let before =
        match query.cursor.as_deref() {
            Some(c) => Some(decode(c).ok_or_else(|| {
                AppError::bad_request("invalid_cursor", "the cursor is not valid")
            })?),
            None => None,
        };
    let mut conn = state.conn().await?;
    let rows = bookings::list_for_user(&mut conn, auth.user_id, before, limit + 1).await?;
    let has_more = rows.len() as i64 > limit;
    let items: Vec<BookingView> = rows
        .iter()
        .take(limit as usize)
        .map(BookingView::from)
        .collect();
    let next_cursor = if has_more {
        items.last().map(|b| encode(b.created_at, b.id))
    } else {
        None
    };
    Ok(Json(BookingPage { items, next_cursor }))
}
