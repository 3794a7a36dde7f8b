//! `POST /v1/checkouts`.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use boxoffice_models::workflow_runs::{self, Inserted, NewRun};
use boxoffice_workflows::checkout::{Checkout, CheckoutState};
use boxoffice_workflows::engine::Workflow;
use chrono::Utc;
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::limits;
use super::validate::validate;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::Json;
use crate::idempotency_key::{self, IdempotencyKey};
use crate::middleware::request_id::RequestId;
use crate::runs::status_path;
use crate::state::AppState;

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutItem {
    pub ticket_type_id: Uuid,
    #[schema(minimum = 1)]
    pub quantity: i32,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub event_id: Uuid,
    pub items: Vec<CheckoutItem>,
    #[serde(default)]
    pub coupon_code: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckoutStarted {
    pub run_id: Uuid,
    pub status: String,
    pub step: String,
    /// Poll this for progress (`GET`, with `If-None-Match` and `?wait=`).
    pub status_url: String,
}

/// Starts a checkout. Returns at once with the run to poll; holding, paying and
/// issuing tickets happen in the workflow. The same `Idempotency-Key` with the
/// same body returns the same run; with another body, 422. A participant has at
/// most one open checkout per event.
#[utoipa::path(post, path = "/checkouts", tag = "checkout",
    security(("bearer" = [])),
    request_body = CheckoutRequest,
    params(IdempotencyKey),
    responses(
        (status = 202, description = "The checkout started (or was started before with this key)", body = CheckoutStarted),
        (status = 400, description = idempotency_key::REQUIRED_RESPONSE, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`event_not_on_sale`, `event_cancelled`, `sales_not_started`, `sales_ended`, `event_over`; `checkout_in_progress` (the participant has an open checkout of the event, named by `run_id` and `status_url`: pay or cancel it first); `ticket_limit_reached` (the event's `max_tickets_per_participant`, with `max_tickets_per_participant` and `tickets_already`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn start_checkout(
    State(state): State<AppState>,
    auth: AuthUser,
    request_id: Option<axum::Extension<RequestId>>,
    IdempotencyKey(key): IdempotencyKey,
    Json(req): Json<CheckoutRequest>,
) -> AppResult<Response> {
    // Stored as optional: runs that no client started have none.
    let key = Some(key);
    let request_hash = key.as_ref().map(|_| {
        let canonical = serde_json::to_vec(&req).unwrap_or_default();
        Sha256::digest(&canonical).to_vec()
    });
    let mut conn = state.conn().await?;
    // A retry is answered from the run it started before the order is checked
    // again: the sale may have closed or sold out since, and the buyer must
    // still learn what became of the first attempt.
    if key.is_some() {
        let earlier =
            workflow_runs::by_idempotency_key(&mut conn, Checkout::KIND, Some(auth.user_id), &key)
                .await?;
        if let Some(run) = earlier {
            return started(same_request(run, &request_hash)?);
        }
    }
    let valid = validate(&mut conn, &req, Utc::now()).await?;
    let limit = valid.max_tickets_per_participant;
    let checkout = CheckoutState::new(
        auth.user_id,
        req.event_id,
        valid.items,
        valid.coupon_code,
        valid.hold_minutes,
    );
    let new = NewRun {
        id: Uuid::now_v7(),
        kind: Checkout::KIND.into(),
        status: "running".into(),
        step: Checkout::initial_step().into(),
        state: serde_json::to_value(&checkout).map_err(AppError::internal)?,
        correlation_id: request_id.map(|r| r.0.0.clone()),
        owner_id: Some(auth.user_id),
        idempotency_key: key,
        request_hash: request_hash.clone(),
        view: serde_json::to_value(Checkout::view(&checkout)).map_err(AppError::internal)?,
        parent_id: None,
        child_key: None,
    };
    let inserted = conn
        .transaction::<_, AppError, _>(async |conn| {
            limits::lock_and_check(conn, auth.user_id, &req, limit, &new.idempotency_key).await?;
            Ok(workflow_runs::start_within(conn, &new).await?)
        })
        .await?;
    let run = match inserted {
        Inserted::Created(run) => {
            metrics::counter!("workflows_started_total", "kind" => Checkout::KIND).increment(1);
            run
        }
        Inserted::Existing(run) => same_request(run, &request_hash)?,
    };
    started(run)
}

/// The earlier run of this key, unless the key came with another request.
fn same_request(
    run: workflow_runs::Run,
    request_hash: &Option<Vec<u8>>,
) -> AppResult<workflow_runs::Run> {
    if run.request_hash == *request_hash {
        return Ok(run);
    }
    Err(AppError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was used with a different request",
    ))
}

/// 202 with the run to poll.
fn started(run: workflow_runs::Run) -> AppResult<Response> {
    let location = status_path(run.id);
    let body = CheckoutStarted {
        run_id: run.id,
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
