//! `POST /v1/auth/register`: create an account (role participant).

use axum::extract::State;
use axum::http::StatusCode;
use boxoffice_models::users::{self, NewUser, Role};
use serde::Deserialize;

use crate::auth::password::hash_password;
use crate::auth::validate::{DisplayName, Email, check_password_policy};
use crate::error::{AppError, AppResult, Problem};
use crate::extract::Json;
use crate::routes::me::UserView;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Trimmed and lower-cased; unique regardless of case.
    #[schema(example = "ada@example.com", max_length = 254)]
    pub email: String,
    /// 10 to 128 characters, not the email address.
    #[schema(
        example = "correct horse battery staple",
        min_length = 10,
        max_length = 128
    )]
    pub password: String,
    #[schema(example = "Ada Lovelace", min_length = 1, max_length = 100)]
    pub display_name: String,
}

/// Creates an account with the participant role.
#[utoipa::path(post, path = "/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The account", body = UserView),
        (status = 409, description = "`email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` with the `field`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    Json(body): Json<RegisterRequest>,
) -> AppResult<(StatusCode, Json<UserView>)> {
    let email = Email::parse_field(&body.email, "email")?;
    let display_name = DisplayName::parse_field(&body.display_name, "display_name")?;
    check_password_policy(&body.password, &email)
        .map_err(|msg| AppError::validation("password", msg))?;

    // Hash before taking a connection: the pool is not held during argon2.
    let password_hash = hash_password(&body.password).await?;
    let new = NewUser::new(
        email.into_inner(),
        display_name.into_inner(),
        password_hash,
        &[Role::Participant],
    );
    let mut conn = state.conn().await?;
    let user = users::insert(&mut conn, &new).await?.ok_or_else(|| {
        AppError::conflict("email_taken", "an account with this email already exists")
    })?;
    tracing::info!(user.id = %user.id, "account registered");
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}
