//! `POST /v1/auth/logout`: end the caller's session.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use boxoffice_models::sessions::{self, reasons};

use crate::auth::{AuthUser, refresh};
use crate::error::{AppResult, Problem};
use crate::state::AppState;

/// Revokes the session: its access tokens stop working at once, on every
/// replica, and its refresh tokens are dead. Clears the refresh cookie.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout(State(state): State<AppState>, auth: AuthUser) -> AppResult<Response> {
    let mut conn = state.conn().await?;
    sessions::revoke(
        &mut conn,
        auth.session_id,
        reasons::LOGOUT,
        chrono::Utc::now(),
    )
    .await?;
    state.change_feed.session_ended(auth.session_id);
    tracing::info!(user.id = %auth.user_id, session.id = %auth.session_id, "signed out");
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, refresh::clear_cookie())],
    )
        .into_response())
}
