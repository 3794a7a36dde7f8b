//! `GET /v1/admin/audit`: the audit log, newest first.

use axum::extract::State;
use boxoffice_models::audit::{self, AuditEntry};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::cursor;
use crate::auth::AdminUser;
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Query};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAuditParams {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One admin action.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    pub id: i64,
    /// The admin who acted; `null` if that account was deleted since.
    pub actor_id: Option<Uuid>,
    #[schema(example = "user.roles.set")]
    pub action: String,
    #[schema(example = "user")]
    pub target_type: String,
    pub target_id: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// The `X-Request-Id` of the request that acted.
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        AuditView {
            id: e.id,
            actor_id: e.actor_id,
            action: e.action,
            target_type: e.target_type,
            target_id: e.target_id,
            details: e.details,
            request_id: e.request_id,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Lists admin actions, newest first.
#[utoipa::path(get, path = "/admin/audit", tag = "admin",
    security(("bearer" = [])),
    params(ListAuditParams),
    responses(
        (status = 200, description = "One page of the audit log", body = AuditPage),
        (status = 400, description = "`invalid_query` or `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_audit(
    _admin: AdminUser,
    State(state): State<AppState>,
    Query(params): Query<ListAuditParams>,
) -> AppResult<Json<AuditPage>> {
    let limit = cursor::page_limit(params.limit)?;
    let before = cursor::decode_param::<i64>(params.cursor.as_deref())?;
    let mut conn = state.conn().await?;
    let mut rows = audit::list(&mut conn, before, i64::from(limit) + 1).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|e| cursor::encode(e.created_at, e.id))
    } else {
        None
    };
    Ok(Json(AuditPage {
        items: rows.into_iter().map(AuditView::from).collect(),
        next_cursor,
    }))
}
