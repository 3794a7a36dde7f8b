//! `GET /v1/ops/queues`: queue health.

use axum::extract::State;
use boxoffice_workflows::operator::QueuesReport;

use super::{backend, map_error};
use crate::auth::AdminUser;
use crate::error::{AppResult, Problem};
use crate::extract::Json;
use crate::state::AppState;

/// Per queue: depth (ready + scheduled), in flight, dead, done; the outbox
/// backlog and relay lag; breaker states per worker process; runs per status.
#[utoipa::path(get, path = "/ops/queues", tag = "operations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Queue health", body = Object),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn queues(
    AdminUser(_admin): AdminUser,
    State(state): State<AppState>,
) -> AppResult<Json<QueuesReport>> {
    Ok(Json(backend(&state)?.queues().await.map_err(map_error)?))
}
