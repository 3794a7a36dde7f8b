//! `GET /v1/ops/dlq/{id}`: one dead job.

use axum::extract::State;
use boxoffice_workflows::operator::DeadJob;

use super::{backend, map_error};
use crate::auth::AdminUser;
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Path};
use crate::state::AppState;

/// One dead job with its arguments.
#[utoipa::path(get, path = "/ops/dlq/{id}", tag = "operations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The apalis task id")),
    responses(
        (status = 200, description = "The dead job", body = Object),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_dead(
    AdminUser(_admin): AdminUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<DeadJob>> {
    Ok(Json(
        backend(&state)?.dead_job(id).await.map_err(map_error)?,
    ))
}
