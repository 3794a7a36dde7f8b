//! `/v1/auth`: register, login, refresh, logout.

pub mod login;
pub mod logout;
pub mod refresh;
pub mod register;

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{jwt, refresh as refresh_token};
use crate::error::AppError;
use crate::extract::Json;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register::register))
        .routes(routes!(login::login))
        .routes(routes!(refresh::refresh))
        .routes(routes!(logout::logout))
}

/// A new pair of tokens. The refresh token is also set as the
/// `boxoffice_refresh` cookie (`HttpOnly; Secure; SameSite=Strict; Path=/v1/auth`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// A JWT to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Opaque; exchange it once at `POST /v1/auth/refresh` for a new pair.
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
}

/// 200 with the tokens in the body and the refresh token in its cookie.
fn token_response(access: jwt::AccessToken, refresh: String, refresh_ttl: Duration) -> Response {
    let cookie = refresh_token::set_cookie(&refresh, refresh_ttl);
    let body = TokenResponse {
        access_token: access.token,
        refresh_token: refresh,
        token_type: "Bearer",
        expires_in: access.expires_in,
    };
    (StatusCode::OK, [(header::SET_COOKIE, cookie)], Json(body)).into_response()
}

/// Tells the browser to drop the refresh cookie along with an error.
fn clearing_cookie(err: AppError) -> AppError {
    err.with_header(header::SET_COOKIE, refresh_token::clear_cookie())
}

/// The client's `User-Agent`, bounded, for the session list.
fn user_agent(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        // `to_str` admits visible ASCII only, so byte slicing stays on a char boundary.
        .map(|ua| ua[..ua.len().min(512)].to_owned())
}
