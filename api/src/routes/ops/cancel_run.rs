//! `POST /v1/ops/runs/{id}/cancel`.

use axum::Extension;
use axum::extract::State;
use boxoffice_workflows::operator::ActionOutcome;
use uuid::Uuid;

use super::{actor, backend, map_error};
use crate::auth::AdminUser;
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Path};
use crate::middleware::request_id::RequestId;
use crate::state::AppState;

/// Cancels a run that has not finished: the workflow undoes what was done and ends it.
#[utoipa::path(post, path = "/ops/runs/{id}/cancel", tag = "operations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The run")),
    responses(
        (status = 200, description = "What was done", body = Object),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_applicable`: nothing to cancel in the run's state", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel_run(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    request: Option<Extension<RequestId>>,
    Path(id): Path<Uuid>,
) -> AppResult<Json<ActionOutcome>> {
    let outcome = backend(&state)?
        .cancel_run(id, actor(admin.user_id, request))
        .await
        .map_err(map_error)?;
    tracing::info!(admin.id = %admin.user_id, run.id = %id, "run cancelled");
    Ok(Json(outcome))
}
