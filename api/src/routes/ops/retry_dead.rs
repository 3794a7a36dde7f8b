//! `POST /v1/ops/dlq/{id}/retry`: retry one dead job.

use axum::Extension;
use axum::extract::State;
use boxoffice_workflows::operator::ActionOutcome;

use super::{actor, backend, map_error};
use crate::auth::AdminUser;
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Path};
use crate::middleware::request_id::RequestId;
use crate::state::AppState;

/// Queues the job again (new id, through the outbox); its run, if parked as
/// `failed`, gets back the status it had and resumes where it stopped.
#[utoipa::path(post, path = "/ops/dlq/{id}/retry", tag = "operations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The apalis task id")),
    responses(
        (status = 200, description = "What was done", body = Object),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn retry_dead(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    request: Option<Extension<RequestId>>,
    Path(id): Path<String>,
) -> AppResult<Json<ActionOutcome>> {
    let outcome = backend(&state)?
        .retry_dead(id, actor(admin.user_id, request))
        .await
        .map_err(map_error)?;
    tracing::info!(admin.id = %admin.user_id, jobs = ?outcome.jobs, "dead job retried");
    Ok(Json(outcome))
}
