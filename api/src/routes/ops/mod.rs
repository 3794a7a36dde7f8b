//! `/v1/ops`: the operator's tools (the same operations as `boxoffice dlq`,
//! `boxoffice runs` and `boxoffice queues`). Admins only: every handler takes
//! [`crate::auth::AdminUser`] first. Actions (retry, discard, cancel) are
//! written to the audit log, with the request id, in the transaction of the
//! change (by the backend).

pub mod audit;
pub mod cancel_run;
pub mod discard_dead;
pub mod list_dead;
pub mod list_runs;
pub mod queues;
pub mod retry_all_dead;
pub mod retry_dead;
pub mod retry_run;
pub mod show_dead;
pub mod show_run;

use std::sync::Arc;

use axum::Extension;
use axum::http::StatusCode;
use boxoffice_workflows::operator::{Actor, OperatorError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::middleware::request_id::RequestId;
use crate::ops::OpsBackend;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_dead::list_dead))
        .routes(routes!(show_dead::show_dead))
        .routes(routes!(retry_dead::retry_dead))
        .routes(routes!(retry_all_dead::retry_all_dead))
        .routes(routes!(discard_dead::discard_dead))
        .routes(routes!(list_runs::list_runs))
        .routes(routes!(show_run::show_run))
        .routes(routes!(retry_run::retry_run))
        .routes(routes!(cancel_run::cancel_run))
        .routes(routes!(queues::queues))
        .routes(routes!(audit::audit))
}

fn backend(state: &AppState) -> AppResult<Arc<dyn OpsBackend>> {
    state.ops.clone().ok_or_else(|| {
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ops_unavailable",
            "the operator's tools are not configured",
        )
    })
}

fn actor(user_id: Uuid, request: Option<Extension<RequestId>>) -> Actor {
    Actor {
        user_id: Some(user_id),
        request_id: request.map(|Extension(RequestId(id))| id),
        via: "api",
    }
}

fn map_error(err: OperatorError) -> AppError {
    match err {
        OperatorError::NotFound(what) => AppError::not_found(what),
        OperatorError::Conflict(detail) => AppError::conflict("not_applicable", detail),
        OperatorError::Invalid(detail) => AppError::bad_request("invalid_request", detail),
        OperatorError::Other(detail) => AppError::internal(anyhow::anyhow!(detail)),
    }
}
