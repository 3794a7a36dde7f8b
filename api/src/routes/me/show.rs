//! `GET /v1/me`.

use axum::extract::State;
use boxoffice_models::users;

use super::UserView;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::Json;
use crate::state::AppState;

/// The caller's own account.
#[utoipa::path(get, path = "/me", tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = UserView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_me(State(state): State<AppState>, auth: AuthUser) -> AppResult<Json<UserView>> {
    let mut conn = state.conn().await?;
    let user = users::find(&mut conn, auth.user_id)
        .await?
        .ok_or_else(|| AppError::not_found("user"))?;
    Ok(Json(UserView::from(&user)))
}
