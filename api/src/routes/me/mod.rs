//! `/v1/me`: the signed-in user's own account. These routes only ever read or
//! change the caller's own row (the id comes from the session, never from input).

pub mod notifications;
pub mod show;
pub mod update;

use boxoffice_models::users::{Role, User};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::RoleSchema;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show::show_me, update::update_me))
        .routes(routes!(notifications::list_notifications))
        .routes(routes!(notifications::read_notification))
}

/// An account as its owner sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    #[schema(value_type = Vec<RoleSchema>)]
    pub roles: Vec<Role>,
    pub created_at: DateTime<Utc>,
    /// Receives reminders before events (confirmations, refunds and waitlist
    /// offers are always sent).
    pub notify_reminders: bool,
    /// Receives messages from event organizers.
    pub notify_messages: bool,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        UserView {
            id: user.id,
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            roles: user.roles(),
            created_at: user.created_at,
            notify_reminders: user.notify_reminders,
            notify_messages: user.notify_messages,
        }
    }
}
