//! `POST /v1/ops/dlq/{id}/discard`: drop a dead job, settling its run's fate.

use axum::Extension;
use axum::extract::State;
use boxoffice_workflows::operator::{ActionOutcome, Fate};
use serde::Deserialize;

use super::{actor, backend, map_error};
use crate::auth::AdminUser;
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Path};
use crate::middleware::request_id::RequestId;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DiscardRequest {
    /// `compensate`: undo what the run did and end it; `fail`: leave it `failed` for good.
    #[schema(value_type = String, example = "compensate")]
    pub fate: Fate,
}

/// Discards a dead job after deciding its run's fate, so nothing is left half-done.
#[utoipa::path(post, path = "/ops/dlq/{id}/discard", tag = "operations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The apalis task id")),
    request_body = DiscardRequest,
    responses(
        (status = 200, description = "What was done", body = Object),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_applicable`: the run cannot take that fate", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn discard_dead(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    request: Option<Extension<RequestId>>,
    Path(id): Path<String>,
    Json(body): Json<DiscardRequest>,
) -> AppResult<Json<ActionOutcome>> {
    let outcome = backend(&state)?
        .discard_dead(id, body.fate, actor(admin.user_id, request))
        .await
        .map_err(map_error)?;
    tracing::info!(admin.id = %admin.user_id, jobs = ?outcome.jobs, fate = ?body.fate, "dead job discarded");
    Ok(Json(outcome))
}
