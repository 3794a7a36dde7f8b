//! `GET /v1/ops/runs/{id}`: a run with its full history.

use axum::extract::State;
use boxoffice_workflows::operator::RunDetail;
use uuid::Uuid;

use super::{backend, map_error};
use crate::auth::AdminUser;
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Path};
use crate::state::AppState;

/// A run: state, every step attempt, signals, errors and its dead jobs.
#[utoipa::path(get, path = "/ops/runs/{id}", tag = "operations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The run")),
    responses(
        (status = 200, description = "The run", body = Object),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_run(
    AdminUser(_admin): AdminUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> AppResult<Json<RunDetail>> {
    Ok(Json(
        backend(&state)?.show_run(id).await.map_err(map_error)?,
    ))
}
