//! `PUT /v1/admin/users/{id}/roles`: replace a user's roles.

use axum::Extension;
use axum::extract::State;
use boxoffice_models::audit::{self, NewAuditEntry, actions};
use boxoffice_models::users::{self, Role, role_names};
use diesel_async::AsyncConnection;
use serde::Deserialize;
use uuid::Uuid;

use super::{AdminUserView, request_id};
use crate::auth::AdminUser;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::middleware::request_id::RequestId;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRolesRequest {
    /// The complete new set: `participant`, `organizer`, `admin`; at least one.
    #[schema(example = json!(["participant", "organizer"]))]
    pub roles: Vec<String>,
}

fn parse_roles(names: &[String]) -> Result<Vec<Role>, AppError> {
    if names.is_empty() {
        return Err(AppError::validation(
            "roles",
            "at least one role is required",
        ));
    }
    let mut roles = Vec::with_capacity(names.len().min(Role::ALL.len()));
    for name in names {
        let role = Role::parse(name).ok_or_else(|| {
            AppError::validation(
                "roles",
                "unknown role; known roles are participant, organizer, admin",
            )
            .with("value", name.chars().take(64).collect::<String>())
        })?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    roles.sort();
    Ok(roles)
}

/// Replaces a user's roles; takes effect on their next request.
#[utoipa::path(put, path = "/admin/users/{id}/roles", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user")),
    request_body = SetRolesRequest,
    responses(
        (status = 200, description = "The user with the new roles", body = AdminUserView),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`cannot_remove_own_admin`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_roles(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    request: Option<Extension<RequestId>>,
    Path(id): Path<Uuid>,
    Json(body): Json<SetRolesRequest>,
) -> AppResult<Json<AdminUserView>> {
    let roles = parse_roles(&body.roles)?;
    // An admin cannot lock themselves out; another admin must demote them.
    if id == admin.user_id && !roles.contains(&Role::Admin) {
        return Err(AppError::conflict(
            "cannot_remove_own_admin",
            "you cannot remove your own admin role",
        ));
    }
    let request_id = request_id(request);

    let mut conn = state.conn().await?;
    let user = conn
        .transaction::<_, AppError, _>(async |c| {
            let before = users::find_for_update(c, id)
                .await?
                .ok_or_else(|| AppError::not_found("user"))?;
            let after = users::set_roles(c, id, &roles)
                .await?
                .ok_or_else(|| AppError::not_found("user"))?;
            audit::record(
                c,
                &NewAuditEntry {
                    actor_id: Some(admin.user_id),
                    action: actions::USER_ROLES_SET,
                    target_type: "user",
                    target_id: id.to_string(),
                    details: serde_json::json!({
                        "previous": before.roles,
                        "roles": role_names(&roles),
                    }),
                    request_id: request_id.as_deref(),
                },
            )
            .await?;
            Ok(after)
        })
        .await?;
    state.change_feed.user_changed(id);
    tracing::info!(admin.id = %admin.user_id, user.id = %id, roles = ?user.roles, "roles set");
    Ok(Json(AdminUserView::from(&user)))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn roles_are_known_deduplicated_and_non_empty() {
        assert_eq!(
            parse_roles(&names(&["admin", "participant", "admin"])).unwrap(),
            vec![Role::Participant, Role::Admin]
        );
        assert!(parse_roles(&[]).is_err());
        assert!(parse_roles(&names(&["root"])).is_err());
        assert!(parse_roles(&names(&["Admin"])).is_err());
    }

    #[test]
    fn a_bad_role_is_a_422() {
        let err = parse_roles(&names(&["superuser"])).unwrap_err();
        assert!(matches!(
            err,
            AppError::Client {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                ..
            }
        ));
    }
}
