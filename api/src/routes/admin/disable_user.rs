//! `POST /v1/admin/users/{id}/disable`: disable an account and end its sessions.

use axum::Extension;
use axum::extract::State;
use boxoffice_models::audit::{self, NewAuditEntry, actions};
use boxoffice_models::sessions::{self, reasons};
use boxoffice_models::users;
use diesel_async::AsyncConnection;
use uuid::Uuid;

use super::{AdminUserView, request_id};
use crate::auth::AdminUser;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::middleware::request_id::RequestId;
use crate::state::AppState;

/// Disables an account: it can no longer sign in, and every session it has
/// ends at once (its access tokens stop working on the next request).
/// Disabling a disabled account changes nothing and answers the same.
#[utoipa::path(post, path = "/admin/users/{id}/disable", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "The disabled user", body = AdminUserView),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`cannot_disable_self`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn disable_user(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    request: Option<Extension<RequestId>>,
    Path(id): Path<Uuid>,
) -> AppResult<Json<AdminUserView>> {
    if id == admin.user_id {
        return Err(AppError::conflict(
            "cannot_disable_self",
            "you cannot disable your own account",
        ));
    }
    let request_id = request_id(request);
    let now = chrono::Utc::now();

    let mut conn = state.conn().await?;
    let user = conn
        .transaction::<_, AppError, _>(async |c| {
            let before = users::find_for_update(c, id)
                .await?
                .ok_or_else(|| AppError::not_found("user"))?;
            let after = users::disable(c, id, now)
                .await?
                .ok_or_else(|| AppError::not_found("user"))?;
            let revoked =
                sessions::revoke_all_for_user(c, id, None, reasons::USER_DISABLED, now).await?;
            audit::record(
                c,
                &NewAuditEntry {
                    actor_id: Some(admin.user_id),
                    action: actions::USER_DISABLED,
                    target_type: "user",
                    target_id: id.to_string(),
                    details: serde_json::json!({
                        "already_disabled": before.is_disabled(),
                        "sessions_revoked": revoked,
                    }),
                    request_id: request_id.as_deref(),
                },
            )
            .await?;
            Ok(after)
        })
        .await?;
    state.change_feed.user_changed(id);
    tracing::info!(admin.id = %admin.user_id, user.id = %id, "user disabled");
    Ok(Json(AdminUserView::from(&user)))
}
