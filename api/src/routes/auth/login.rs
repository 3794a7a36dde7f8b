//! `POST /v1/auth/login`: exchange email and password for a session.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use boxoffice_models::sessions::{self, NewSession};
use boxoffice_models::users;
use serde::Deserialize;
use uuid::Uuid;

use super::{TokenResponse, token_response, user_agent};
use crate::auth::validate::{Email, check_presented_password};
use crate::auth::{jwt, password, refresh};
use crate::client_ip::ClientIp;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::Json;
use crate::login_lockout;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com", max_length = 254)]
    pub email: String,
    #[schema(example = "correct horse battery staple", max_length = 128)]
    pub password: String,
}

fn invalid_credentials() -> AppError {
    AppError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "the email or the password is wrong",
    )
}

/// Signs in: returns an access token and a refresh token (also set as a cookie).
///
/// Failed attempts lock out, with 429 `too_many_login_attempts` even for the
/// right password: 10 for one account from one address lock that account for
/// that address (15 minutes); 50 from one address lock the address; 100 for
/// one account from all addresses within an hour lock the account for an
/// hour, except from addresses it signed in from before (its known devices).
/// The limits are configurable.
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; `Set-Cookie: boxoffice_refresh=…`", body = TokenResponse),
        (status = 401, description = "`invalid_credentials`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_disabled`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_login_attempts`, with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(body): Json<LoginRequest>,
) -> AppResult<Response> {
    let email = Email::parse_field(&body.email, "email")?;
    check_presented_password(&body.password, "password")?;
    login_lockout::check(&state, email.as_str(), ip).await?;

    let user = {
        let mut conn = state.conn().await?;
        users::find_by_email(&mut conn, email.as_str()).await?
    };
    // Unknown accounts cost one verification too, so timing does not tell
    // which emails have accounts.
    let matches = match &user {
        Some(user) => password::verify_password(&body.password, &user.password_hash).await?,
        None => password::verify_dummy(&body.password).await?,
    };
    let user = match user {
        Some(user) if matches => user,
        _ => {
            login_lockout::record_failure(&state, email.as_str(), ip).await;
            return Err(invalid_credentials());
        }
    };
    // Said only to someone who knows the password: no account probing.
    if user.is_disabled() {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            "account_disabled",
            "this account is disabled",
        ));
    }
    login_lockout::record_success(&state, email.as_str(), ip).await;

    let now = chrono::Utc::now();
    let refresh_ttl = state.config.refresh_ttl;
    let token = refresh::generate();
    let new_session = NewSession {
        id: Uuid::now_v7(),
        user_id: user.id,
        expires_at: now + chrono::Duration::from_std(refresh_ttl).map_err(AppError::internal)?,
        user_agent: user_agent(&headers),
        ip: ip.map(|ip| ip.to_string()),
    };
    let session = {
        let mut conn = state.conn().await?;
        sessions::start(&mut conn, &new_session, &token.hash).await?
    };
    let access = jwt::issue(&state.config.jwt, user.id, session.id, &user.roles())
        .map_err(AppError::internal)?;
    tracing::info!(user.id = %user.id, session.id = %session.id, "signed in");
    Ok(token_response(access, token.token, refresh_ttl))
}
