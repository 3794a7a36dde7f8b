//! `PATCH /v1/me`: change the display name, the password and what email to
//! receive.

use axum::extract::State;
use axum::http::StatusCode;
use boxoffice_models::preferences::{self, PreferenceChanges};
use boxoffice_models::sessions::{self, reasons};
use boxoffice_models::users;
use diesel_async::AsyncConnection;
use serde::Deserialize;

use super::UserView;
use crate::auth::validate::{DisplayName, Email, check_password_policy, check_presented_password};
use crate::auth::{AuthUser, password};
use crate::client_ip::ClientIp;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::Json;
use crate::login_lockout;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    #[schema(example = "Ada King", min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
    /// Required with `new_password`.
    #[schema(max_length = 128)]
    pub current_password: Option<String>,
    /// 10 to 128 characters, not the email. Signs out every other session.
    #[schema(min_length = 10, max_length = 128)]
    pub new_password: Option<String>,
    /// Receive reminders before events.
    pub notify_reminders: Option<bool>,
    /// Receive messages from event organizers.
    pub notify_messages: Option<bool>,
}

/// Changes the caller's display name, password and/or email preferences.
///
/// A password change needs the current password, and revokes every other
/// session of the account (the one making the change stays signed in). Wrong
/// current passwords count towards the login lockout.
#[utoipa::path(patch, path = "/me", tag = "me",
    security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "The updated account", body = UserView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`invalid_current_password`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_login_attempts`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_me(
    State(state): State<AppState>,
    auth: AuthUser,
    ClientIp(ip): ClientIp,
    Json(body): Json<UpdateMeRequest>,
) -> AppResult<Json<UserView>> {
    let display_name = body
        .display_name
        .as_deref()
        .map(|n| DisplayName::parse_field(n, "display_name"))
        .transpose()?;
    let new_password = match (&body.current_password, &body.new_password) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(AppError::validation(
                "new_password",
                "current_password is only needed to set new_password",
            ));
        }
        (None, Some(_)) => {
            return Err(AppError::validation(
                "current_password",
                "changing the password requires the current password",
            ));
        }
        (Some(current), Some(new)) => {
            check_presented_password(current, "current_password")?;
            Some((current.as_str(), new.as_str()))
        }
    };

    let user = {
        let mut conn = state.conn().await?;
        users::find(&mut conn, auth.user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user"))?
    };

    let new_hash = match new_password {
        None => None,
        Some((current, new)) => {
            login_lockout::check(&state, &user.email, ip).await?;
            if !password::verify_password(current, &user.password_hash).await? {
                login_lockout::record_failure(&state, &user.email, ip).await;
                return Err(AppError::new(
                    StatusCode::FORBIDDEN,
                    "invalid_current_password",
                    "the current password is wrong",
                )
                .with("field", "current_password"));
            }
            // Stored emails were parsed on the way in; parsing again only wraps them.
            let email =
                Email::parse(&user.email).map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
            check_password_policy(new, &email)
                .map_err(|msg| AppError::validation("new_password", msg))?;
            Some(password::hash_password(new).await?)
        }
    };

    let mut conn = state.conn().await?;
    let session_id = auth.session_id;
    let updated = conn
        .transaction::<_, AppError, _>(async |c| {
            let mut current = user;
            let preference_changes = PreferenceChanges {
                notify_reminders: body.notify_reminders,
                notify_messages: body.notify_messages,
            };
            if !preference_changes.is_empty() {
                let saved = preferences::update(c, current.id, preference_changes)
                    .await?
                    .ok_or_else(|| AppError::not_found("user"))?;
                current.notify_reminders = saved.notify_reminders;
                current.notify_messages = saved.notify_messages;
            }
            if let Some(name) = &display_name {
                current = users::set_display_name(c, current.id, name.as_str()).await?;
            }
            if let Some(hash) = &new_hash {
                current = users::set_password_hash(c, current.id, hash).await?;
                let revoked = sessions::revoke_all_for_user(
                    c,
                    current.id,
                    Some(session_id),
                    reasons::PASSWORD_CHANGED,
                    chrono::Utc::now(),
                )
                .await?;
                tracing::info!(user.id = %current.id, sessions.revoked = revoked, "password changed");
            }
            Ok(current)
        })
        .await?;
    if new_hash.is_some() {
        state.change_feed.user_changed(updated.id);
    }
    Ok(Json(UserView::from(&updated)))
}
