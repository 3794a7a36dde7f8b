//! `GET /v1/admin/users`: search and page through accounts.

use axum::extract::State;
use boxoffice_models::users;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AdminUserView, cursor};
use crate::auth::AdminUser;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Query};
use crate::state::AppState;

const QUERY_MAX: usize = 254;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersParams {
    /// Case-insensitive substring of the email or the display name.
    pub q: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserPage {
    pub items: Vec<AdminUserView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Lists accounts, oldest first, optionally filtered by `q`.
#[utoipa::path(get, path = "/admin/users", tag = "admin",
    security(("bearer" = [])),
    params(ListUsersParams),
    responses(
        (status = 200, description = "One page of accounts", body = UserPage),
        (status = 400, description = "`invalid_query` or `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_users(
    _admin: AdminUser,
    State(state): State<AppState>,
    Query(params): Query<ListUsersParams>,
) -> AppResult<Json<UserPage>> {
    let limit = cursor::page_limit(params.limit)?;
    let after = cursor::decode_param::<Uuid>(params.cursor.as_deref())?;
    let q = params.q.as_deref().map(str::trim);
    if q.is_some_and(|q| q.chars().count() > QUERY_MAX) {
        return Err(
            AppError::bad_request("invalid_query", "q is longer than 254 characters")
                .with("field", "q"),
        );
    }
    // PostgreSQL text cannot hold NUL (the query would fail), and no stored
    // email or name contains a control character.
    if q.is_some_and(|q| q.chars().any(char::is_control)) {
        return Err(
            AppError::bad_request("invalid_query", "q may not contain control characters")
                .with("field", "q"),
        );
    }

    let mut conn = state.conn().await?;
    // One extra row tells whether there is a next page.
    let mut rows = users::search(&mut conn, q, after, i64::from(limit) + 1).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|u| cursor::encode(u.created_at, u.id))
    } else {
        None
    };
    Ok(Json(UserPage {
        items: rows.iter().map(AdminUserView::from).collect(),
        next_cursor,
    }))
}
