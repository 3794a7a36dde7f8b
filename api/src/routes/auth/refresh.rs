//! `POST /v1/auth/refresh`: rotate the refresh token, get a new access token.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use boxoffice_models::sessions::{self, Rotation};
use boxoffice_models::users::parse_roles;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{TokenResponse, clearing_cookie, token_response};
use crate::auth::{jwt, refresh};
use crate::error::{AppError, AppResult, Problem};
use crate::extract::Json;
use crate::state::AppState;

/// Refresh tokens we issue are 43 characters; anything much longer is not one.
const TOKEN_MAX: usize = 256;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// A JSON body that may be absent: an empty body gives `None`; anything else
/// must be valid JSON of `T`, with the same problem rejections as [`Json`].
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let headers = req.headers().clone();
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is larger than the limit",
                )
            } else {
                AppError::bad_request("bad_request", rejection.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        let mut rebuilt = Request::new(Body::from(bytes));
        *rebuilt.headers_mut() = headers;
        let Json(value) = Json::<T>::from_request(rebuilt, state).await?;
        Ok(OptionalJson(Some(value)))
    }
}

fn invalid_refresh_token() -> AppError {
    clearing_cookie(AppError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
        "the refresh token is invalid, expired or already used; sign in again",
    ))
}

/// Exchanges a refresh token for a new access token and a new refresh token.
///
/// The token is read from the JSON body `{refresh_token}`, or from the
/// `boxoffice_refresh` cookie when the body is empty. Each refresh token works
/// once: presenting a used one revokes the whole session, so a stolen token is
/// useful to at most one party.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Optional: without a body the cookie is used"),
    responses(
        (status = 200, description = "A new pair; the cookie is replaced", body = TokenResponse),
        (status = 401, description = "`invalid_refresh_token`; a reused token also ends its session", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> AppResult<Response> {
    let presented = match body {
        Some(body) => body.refresh_token,
        None => refresh::from_cookie(&headers).ok_or_else(invalid_refresh_token)?,
    };
    if presented.is_empty() || presented.len() > TOKEN_MAX {
        return Err(invalid_refresh_token());
    }

    let now = chrono::Utc::now();
    let refresh_ttl = state.config.refresh_ttl;
    let ttl = chrono::Duration::from_std(refresh_ttl).map_err(AppError::internal)?;
    let next = refresh::generate();
    let outcome = {
        let mut conn = state.conn().await?;
        sessions::rotate_refresh_token(
            &mut conn,
            &refresh::digest(&presented),
            &next.hash,
            now,
            ttl,
        )
        .await?
    };
    match outcome {
        Rotation::Rotated(live) => {
            let access = jwt::issue(
                &state.config.jwt,
                live.user_id,
                live.session_id,
                &parse_roles(&live.roles),
            )
            .map_err(AppError::internal)?;
            Ok(token_response(access, next.token, refresh_ttl))
        }
        Rotation::Reused { session_id } => {
            state.change_feed.session_ended(session_id);
            tracing::warn!(session.id = %session_id, "refresh token reused; session revoked");
            Err(invalid_refresh_token())
        }
        Rotation::Invalid => Err(invalid_refresh_token()),
    }
}
