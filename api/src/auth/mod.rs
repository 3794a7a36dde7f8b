//! Authentication: who is calling, and with which roles.
//!
//! Handlers take [`AuthUser`] as an extractor; it verifies the bearer access
//! token (JWT, pinned algorithm, required `exp`/`iss`/`aud`/`sub`) and that its
//! session is still live in Postgres. Roles come from the database row, not from
//! the token. The session is read once and then kept in memory until Postgres
//! says it, or its user, changed ([`crate::change_feed`]): a logout, a disabled
//! user or a role change applies to the next request on the replica that made
//! it, and on the others as soon as the notification arrives (about a
//! millisecond after the commit).
//!
//! - [`jwt`]: issuing and verifying access tokens.
//! - [`refresh`]: opaque refresh tokens and their cookie.
//! - [`password`]: argon2id hashing, off the runtime.
//! - [`validate`]: parsed emails, display names, the password policy.

pub mod jwt;
pub mod password;
pub mod refresh;
pub mod session_reads;
pub mod validate;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use boxoffice_models::sessions;
use boxoffice_models::users::{Role, parse_roles};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::state::AppState;

pub use password::hash_password;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub roles: Vec<Role>,
}

impl AuthUser {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
    pub fn is_admin(&self) -> bool {
        self.has_role(Role::Admin)
    }
    /// 403 unless the caller holds `role` (admins hold every permission).
    pub fn require(&self, role: Role) -> AppResult<()> {
        if self.has_role(role) || self.is_admin() {
            Ok(())
        } else {
            Err(AppError::forbidden(format!(
                "requires the {} role",
                role.as_str()
            )))
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer_from_headers(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let Some(token) = bearer_from_headers(&parts.headers) else {
            return Err(AppError::unauthorized("a bearer access token is required"));
        };
        let verified = jwt::verify(&state.config.jwt, token).map_err(|e| {
            tracing::debug!(error = %e, "access token refused");
            AppError::unauthorized("the access token is invalid or expired")
        })?;
        let now = chrono::Utc::now();
        let live = match state.change_feed.views().sessions.get(&verified.session_id) {
            Some(kept) => Some(kept),
            // Boxed: taken by the first request of a session only, and
            // every request's future would otherwise have room for it.
            None => Box::pin(find_live(state, verified.session_id, verified.user_id, now)).await?,
        };
        // A kept session is checked as the query checks it.
        let live = live.filter(|s| s.user_id == verified.user_id && s.expires_at > now);
        let Some(live) = live else {
            return Err(AppError::unauthorized(
                "the session has ended; sign in again",
            ));
        };
        Ok(AuthUser {
            user_id: live.user_id,
            session_id: live.session_id,
            roles: parse_roles(&live.roles),
        })
    }
}

/// The live session from Postgres, kept in memory for the next request.
async fn find_live(
    state: &AppState,
    session_id: Uuid,
    user_id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> AppResult<Option<sessions::LiveSession>> {
    let kept = &state.change_feed.views().sessions;
    // Registered before the read, so a change committed meanwhile stops the store.
    let fill = kept.begin_fill(session_id);
    let live = state
        .session_reads
        .find_live(session_id, user_id, now)
        .await?;
    if let Some(live) = &live {
        fill.store(live.clone());
    }
    Ok(live)
}

/// An authenticated caller holding the admin role: 401 without a valid session,
/// 403 without the role. Admin handlers take this first, so a non-admin learns
/// nothing about the input's validity or the target's existence.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        user.require(Role::Admin)?;
        Ok(AdminUser(user))
    }
}

/// A role, for the OpenAPI document (the models crate knows nothing of OpenAPI).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = Role)]
#[allow(dead_code)] // Only its schema is used.
#[serde(rename_all = "snake_case")]
pub enum RoleSchema {
    Participant,
    Organizer,
    Admin,
}

#[cfg(test)]
mod tests {
    /// Every identity operation that takes an [`super::AuthUser`] or
    /// [`super::AdminUser`] declares the bearer scheme in the OpenAPI document,
    /// and the ones that sign you in do not.
    #[test]
    fn the_openapi_document_marks_authenticated_operations() {
        let (_, doc) = crate::router::router_and_openapi();
        let doc = serde_json::to_value(&doc).unwrap();
        let security = |path: &str, method: &str| {
            doc["paths"][path][method]
                .get("security")
                .cloned()
                .unwrap_or_default()
        };
        let bearer = serde_json::json!([{"bearer": []}]);
        for (path, method) in [
            ("/v1/auth/logout", "post"),
            ("/v1/me", "get"),
            ("/v1/me", "patch"),
            ("/v1/admin/users", "get"),
            ("/v1/admin/users/{id}/roles", "put"),
            ("/v1/admin/users/{id}/disable", "post"),
            ("/v1/admin/audit", "get"),
        ] {
            assert_eq!(security(path, method), bearer, "{method} {path}");
        }
        for (path, method) in [
            ("/v1/auth/register", "post"),
            ("/v1/auth/login", "post"),
            ("/v1/auth/refresh", "post"),
        ] {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing"
            );
            assert!(security(path, method).is_null(), "{method} {path}");
        }
        let role = &doc["components"]["schemas"]["Role"]["enum"];
        assert_eq!(
            role,
            &serde_json::json!(["participant", "organizer", "admin"])
        );
    }
}
