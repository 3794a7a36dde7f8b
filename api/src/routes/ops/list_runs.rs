//! `GET /v1/ops/runs`: workflow runs, newest first.

use axum::extract::State;
use boxoffice_workflows::operator::RunSummary;
use serde::Deserialize;

use super::{backend, map_error};
use crate::auth::AdminUser;
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Query};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsParams {
    /// running, waiting, compensating, completed, compensated, failed or cancelled.
    pub status: Option<String>,
    /// The workflow kind, e.g. `checkout`.
    pub kind: Option<String>,
    /// At most this many (1 to 1000, default 50).
    pub limit: Option<i64>,
}

/// Lists runs, newest first.
#[utoipa::path(get, path = "/ops/runs", tag = "operations",
    security(("bearer" = [])),
    params(RunsParams),
    responses(
        (status = 200, description = "Runs", body = Vec<Object>),
        (status = 400, description = "`invalid_request`: unknown status or kind", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_runs(
    AdminUser(_admin): AdminUser,
    State(state): State<AppState>,
    Query(params): Query<RunsParams>,
) -> AppResult<Json<Vec<RunSummary>>> {
    let runs = backend(&state)?
        .list_runs(params.status, params.kind, params.limit.unwrap_or(50))
        .await
        .map_err(map_error)?;
    Ok(Json(runs))
}
