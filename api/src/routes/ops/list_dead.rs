//! `GET /v1/ops/dlq`: dead-lettered jobs.

use axum::extract::State;
use boxoffice_workflows::operator::DeadJob;
use serde::Deserialize;

use super::{backend, map_error};
use crate::auth::AdminUser;
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Query};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadParams {
    /// One queue (e.g. `advance_run`); every queue when absent.
    pub queue: Option<String>,
}

/// Lists dead jobs, oldest first: queue, run, step, attempts, last error, age.
#[utoipa::path(get, path = "/ops/dlq", tag = "operations",
    security(("bearer" = [])),
    params(DeadParams),
    responses(
        (status = 200, description = "Dead jobs", body = Vec<Object>),
        (status = 400, description = "`invalid_request`: unknown queue", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_dead(
    AdminUser(_admin): AdminUser,
    State(state): State<AppState>,
    Query(params): Query<DeadParams>,
) -> AppResult<Json<Vec<DeadJob>>> {
    Ok(Json(
        backend(&state)?
            .dead_jobs(params.queue)
            .await
            .map_err(map_error)?,
    ))
}
