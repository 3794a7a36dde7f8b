//! `POST /v1/ops/dlq/retry`: retry every dead job (of one queue).

use axum::Extension;
use axum::extract::State;
use boxoffice_workflows::operator::ActionOutcome;

use super::list_dead::DeadParams;
use super::{actor, backend, map_error};
use crate::auth::AdminUser;
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Query};
use crate::middleware::request_id::RequestId;
use crate::state::AppState;

/// Retries every dead job, or those of `queue`.
#[utoipa::path(post, path = "/ops/dlq/retry", tag = "operations",
    security(("bearer" = [])),
    params(DeadParams),
    responses(
        (status = 200, description = "What was done", body = Object),
        (status = 400, description = "`invalid_request`: unknown queue", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn retry_all_dead(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    request: Option<Extension<RequestId>>,
    Query(params): Query<DeadParams>,
) -> AppResult<Json<ActionOutcome>> {
    let outcome = backend(&state)?
        .retry_all_dead(params.queue, actor(admin.user_id, request))
        .await
        .map_err(map_error)?;
    tracing::info!(admin.id = %admin.user_id, jobs = outcome.jobs.len(), "dead jobs retried");
    Ok(Json(outcome))
}
