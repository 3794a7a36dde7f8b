//! `/v1/admin`: users, roles, the audit log and the analytics totals. Admins only: every handler
//! takes [`crate::auth::AdminUser`] first. Every change is recorded in the
//! audit log in the same transaction as the change.

pub mod analytics;
pub mod cursor;
pub mod disable_user;
pub mod list_audit;
pub mod list_users;
pub mod set_roles;

use axum::Extension;
use boxoffice_models::users::{Role, User};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::RoleSchema;
use crate::middleware::request_id::RequestId;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users::list_users))
        .routes(routes!(set_roles::set_roles))
        .routes(routes!(disable_user::disable_user))
        .routes(routes!(list_audit::list_audit))
        .routes(routes!(analytics::admin_analytics))
}

/// An account as an admin sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminUserView {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    #[schema(value_type = Vec<RoleSchema>)]
    pub roles: Vec<Role>,
    /// When the account was disabled; `null` while it is active.
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&User> for AdminUserView {
    fn from(user: &User) -> Self {
        AdminUserView {
            id: user.id,
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            roles: user.roles(),
            disabled_at: user.disabled_at,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// The request id for the audit log; absent only when the app is driven
/// without its middleware.
fn request_id(ext: Option<Extension<RequestId>>) -> Option<String> {
    ext.map(|Extension(RequestId(id))| id)
}
