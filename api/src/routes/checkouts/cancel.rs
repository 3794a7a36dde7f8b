//! `POST /v1/checkouts/{run_id}/cancel`: the buyer gives up a checkout.
//!
//! The cancel is a signal to the run (stored, then delivered by a worker like a
//! payment webhook), so it follows the run's own order of events: a run
//! waiting for payment cancels its payment intent and releases its seats and
//! coupon use at once. A payment that raced the cancel is handled as a late
//! payment: sold if the seats are still free, refunded otherwise.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use boxoffice_models::workflow_runs;
use boxoffice_models::workflow_signals::{self, NewSignal, Recorded};
use boxoffice_workflows::checkout::{Checkout, SIGNAL_CANCEL_REQUESTED};
use boxoffice_workflows::engine::{RunStatus, Workflow};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::runs::status_path;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckoutCancelling {
    pub run_id: Uuid,
    /// The run's status when the cancel was taken (it moves on at once).
    pub status: String,
    pub step: String,
    /// Poll this to see the seats released (`compensated`, error `cancelled`).
    pub status_url: String,
}

/// Cancels the caller's checkout: its payment intent is cancelled and its
/// tickets are released now rather than at the payment deadline. Answers 202
/// at once; the run shows the outcome. Cancelling again is harmless.
#[utoipa::path(post, path = "/checkouts/{run_id}/cancel", tag = "checkout",
    security(("bearer" = [])),
    params(("run_id" = Uuid, Path, description = "The checkout's run id")),
    responses(
        (status = 202, description = "The cancel was taken; poll `status_url`", body = CheckoutCancelling),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such checkout of the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`checkout_finished`: the checkout already ended (with `run_status`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel_checkout(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(run_id): Path<Uuid>,
) -> AppResult<Response> {
    let mut conn = state.conn().await?;
    // Another participant's checkout does not exist, as far as the caller can tell.
    let run = workflow_runs::find(&mut conn, run_id)
        .await?
        .filter(|r| r.kind == Checkout::KIND && r.owner_id == Some(auth.user_id))
        .ok_or_else(|| AppError::not_found("checkout"))?;
    if RunStatus::parse(&run.status).is_none_or(RunStatus::is_finished) {
        return Err(
            AppError::conflict("checkout_finished", "this checkout has already ended")
                .with("run_status", &run.status),
        );
    }
    let recorded = workflow_signals::record(
        &mut conn,
        NewSignal {
            run_id,
            name: SIGNAL_CANCEL_REQUESTED.to_owned(),
            // One cancel per run: a repeated request changes nothing.
            dedupe_key: format!("buyer_cancel:{run_id}"),
            payload: json!({ "user_id": auth.user_id }),
        },
    )
    .await?;
    if recorded == Recorded::New {
        tracing::info!(run.id = %run_id, "the buyer cancelled a checkout");
    }
    let location = status_path(run_id);
    let body = CheckoutCancelling {
        run_id,
        status: run.status,
        step: run.step,
        status_url: location.clone(),
    };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}
