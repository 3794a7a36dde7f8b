//! `POST /v1/checkouts`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use boxoffice_models::DbConn;
use boxoffice_models::workflow_runs::{self, Inserted, NewRun};
use boxoffice_workflows::checkout::Checkout;
use boxoffice_workflows::engine::{RunStatus, Workflow};
use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::gathered::{Gathered, Start};
use super::limits;
use super::new_checkout::NewCheckout;
use super::sale_terms;
use super::taken_in::TakenIn;
use super::validate::{validate, validate_kept};
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::Json;
use crate::first_steps::{FirstStep, SoldOut};
use crate::idempotency_key::{self, IdempotencyKey};
use crate::middleware::request_id::RequestId;
use crate::runs::{point_at_status, status_path};
use crate::starts_in_flight::Entered;
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
    /// The run's version this answer shows; the answer's `ETag` names it, so
    /// the first poll can wait for the next change at once. A finished
    /// `status` (`compensated` when sold out) is final: nothing to poll.
    pub version: i32,
    /// The checkout's own fields as `GET /v1/workflows/{id}` shows them, once
    /// its seats are held or sold out (usually already in this answer):
    /// `expires_at` when held, `error` (`sold_out`, ...) when not,
    /// `amount_minor`, `currency`, ...
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// Starts a checkout and takes its first step, the hold: the answer says
/// whether seats are held (`expires_at`) or sold out (`status` `compensated`,
/// `error`). Paying and issuing tickets happen in the workflow; poll the run.
/// The same `Idempotency-Key` with the same body returns the same run; with
/// another body, 422. A participant has at
/// most one open checkout per event.
#[utoipa::path(post, path = "/checkouts", tag = "checkout",
    security(("bearer" = [])),
    request_body = CheckoutRequest,
    params(IdempotencyKey),
    responses(
        (status = 202, description = "The checkout started and its seats are held (`expires_at`) or sold out (`compensated`, `error`); or it was started before with this key (then as it is now)", body = CheckoutStarted, headers(("ETag" = String, description = "The version of the run's status this answer shows, as `GET /v1/workflows/{id}` tags it: send it as `If-None-Match` with `?wait=` to hear of the next change"), ("Location" = String, description = "The run's status"))),
        (status = 400, description = idempotency_key::REQUIRED_RESPONSE, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`event_not_on_sale`, `event_cancelled`, `sales_not_started`, `sales_ended`, `event_over`; `checkout_in_progress` (the participant has an open checkout of the event, named by `run_id` and `status_url`: pay or cancel it first); `ticket_limit_reached` (the event's `max_tickets_per_participant`, with `max_tickets_per_participant` and `tickets_already`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    ))]
pub fn start_checkout(
    State(state): State<AppState>,
    taken_in: TakenIn,
    auth: AuthUser,
    request_id: Option<axum::Extension<RequestId>>,
    IdempotencyKey(key): IdempotencyKey,
    Json(req): Json<CheckoutRequest>,
) -> impl Future<Output = AppResult<Response>> {
    // Boxed, so that the handler's future, allocated as the request arrives,
    // has no room for the pool's wait below: in a flash sale most requests
    // wait first for their session, and hold only the extractors meanwhile.
    // Returned as it is, not awaited in an `async fn` of its own, whose
    // future would keep the arguments beside the box.
    Box::pin(connect_and_start(
        state, taken_in, auth, request_id, key, req,
    ))
}

/// Starts with the others that arrive with it, or else alone; the start
/// counts in flight until it is answered (`taken_in`).
async fn connect_and_start(
    state: AppState,
    mut taken_in: TakenIn,
    auth: AuthUser,
    request_id: Option<axum::Extension<RequestId>>,
    key: String,
    req: CheckoutRequest,
) -> AppResult<Response> {
    // Stored as optional: runs that no client started have none.
    let key = Some(key);
    let request_hash = key.as_ref().map(|_| {
        let canonical = serde_json::to_vec(&req).unwrap_or_default();
        Sha256::digest(&canonical).to_vec()
    });
    let correlation_id = request_id.as_ref().map(|r| r.0.0.clone());
    // Each way boxed: a request waiting for its batch holds the batch's
    // wait only, not room for the pool's wait of a start alone (2 KB), and
    // in a flood thousands wait for their batch at once.
    if let Some(answered) = Box::pin(gathered(
        &state,
        taken_in.handed_over(),
        &auth,
        correlation_id,
        &key,
        &request_hash,
        &req,
    ))
    .await
    {
        return answered;
    }
    Box::pin(alone(state, auth, request_id, key, request_hash, req)).await
}

/// Starts alone: takes a pooled connection and starts on it.
async fn alone(
    state: AppState,
    auth: AuthUser,
    request_id: Option<axum::Extension<RequestId>>,
    key: Option<String>,
    request_hash: Option<Vec<u8>>,
    req: CheckoutRequest,
) -> AppResult<Response> {
    let mut conn = state.conn().await?;
    // Boxed, so that this future is as small as what it holds while it waits
    // for the connection above (most of a flash sale's requests, for a
    // while): the space of every step below is taken once it has one.
    Box::pin(start(
        &state,
        &mut conn,
        auth,
        request_id,
        key,
        request_hash,
        req,
    ))
    .await
}

/// The start written with the others that arrive with it
/// ([`gathered`](super::gathered)), when the event's terms are in memory (or
/// read now, in turn) and the order passes them; `None` when the request is
/// to start alone (the terms cannot be kept, the order is refused and its
/// key may have started a run before, or the batch left it to its own
/// transaction). `on_its_way` counts the start on its way to the writer,
/// until it is queued there or goes another way.
async fn gathered(
    state: &AppState,
    on_its_way: Option<Entered>,
    auth: &AuthUser,
    correlation_id: Option<String>,
    key: &Option<String>,
    request_hash: &Option<Vec<u8>>,
    req: &CheckoutRequest,
) -> Option<AppResult<Response>> {
    let starts = state.gathered_starts()?;
    let terms = sale_terms::kept_or_read(state, req.event_id).await?;
    let valid = validate_kept(&terms, req, Utc::now()).ok()?;
    let limit = valid.max_tickets_per_participant;
    let start = Start {
        new: NewCheckout::of(auth.user_id, req, valid, correlation_id, key, request_hash),
        limit,
    };
    drop(terms);
    let (run_id, now) = match starts.write(start, on_its_way).await {
        Gathered::Usual => return None,
        Gathered::Decided(run_id, step) | Gathered::Stepped(run_id, step) => (run_id, step),
        Gathered::ToStep(run, backstop) => {
            // Boxed: only a start that may fit waits for a connection.
            let stepped = Box::pin(first_step_of_gathered(state, &run, backstop)).await;
            (run.id, stepped.unwrap_or_else(|| as_created(*run)))
        }
    };
    metrics::counter!("workflows_started_total", "kind" => Checkout::KIND).increment(1);
    Some(answer(run_id, now))
}

/// Takes the first step of `run`, inserted by its batch with its start
/// message `backstop`, on a pooled connection. Without one the run is still
/// started: its backstop takes the step, and the buyer polls.
async fn first_step_of_gathered(
    state: &AppState,
    run: &workflow_runs::Run,
    backstop: i64,
) -> Option<FirstStep> {
    let mut conn = state.conn().await.ok()?;
    first_step(state, &mut conn, run, Some(backstop)).await
}

/// The start on `conn`: validates, creates the run (or finds the one its key
/// started) and takes its first step.
async fn start(
    state: &AppState,
    conn: &mut DbConn,
    auth: AuthUser,
    request_id: Option<axum::Extension<RequestId>>,
    key: Option<String>,
    request_hash: Option<Vec<u8>>,
    req: CheckoutRequest,
) -> AppResult<Response> {
    // A retry is answered from the run it started, even when the order would
    // no longer pass (the sale may have closed or sold out since): the buyer
    // must still learn what became of the first attempt. The key is looked
    // up only when the order is refused; one that passes finds its earlier
    // run at the insert. A new checkout, nearly every request, then costs no
    // lookup.
    let valid = match validate(state, conn, &req, Utc::now()).await {
        Ok(valid) => valid,
        Err(refused) => {
            return earlier_or(state, conn, auth.user_id, &key, &request_hash, refused).await;
        }
    };
    let limit = valid.max_tickets_per_participant;
    let new = NewCheckout::of(
        auth.user_id,
        &req,
        valid,
        request_id.map(|r| r.0.0.clone()),
        &key,
        &request_hash,
    )
    .new_run()?;
    // The process takes the run's first step itself (below); the start
    // message is its backstop, due later.
    let due = state.first_steps.as_ref().map(|steps| steps.backstop_due());
    let created = conn
        .transaction::<_, AppError, _>(async |conn| {
            limits::lock_and_check(conn, auth.user_id, &req, limit, &new.idempotency_key).await?;
            create(state, conn, &new, due).await
        })
        .await;
    let created = match created {
        Ok(created) => created,
        Err(refused) => {
            return earlier_or(
                state,
                conn,
                auth.user_id,
                &new.idempotency_key,
                &request_hash,
                refused,
            )
            .await;
        }
    };
    let (run_id, now) = match created {
        Created::Existing(run) => {
            let run = same_request(run, &request_hash)?;
            let stepped = step_left_behind(state, conn, &run).await;
            return started(run, stepped);
        }
        Created::Decided(run_id, step) => (run_id, step),
        Created::ToStep(run, backstop) => {
            let stepped = first_step(state, conn, &run, Some(backstop)).await;
            (run.id, stepped.unwrap_or_else(|| as_created(run)))
        }
    };
    metrics::counter!("workflows_started_total", "kind" => Checkout::KIND).increment(1);
    answer(run_id, now)
}

/// What the start's transaction did.
enum Created {
    /// Created now, its first step to take; the start message (its backstop
    /// when this process takes the step) is `.1`.
    ToStep(workflow_runs::Run, i64),
    /// Inserted decided (sold out already): its id, where it stands.
    Decided(Uuid, FirstStep),
    /// Started before with this key.
    Existing(workflow_runs::Run),
}

/// Inserts the run in the start's transaction, unless its key started one
/// before: decided already when its seats are gone (no start message, no
/// hold to wait for), otherwise with its start message, due at `due`.
async fn create(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    new: &NewRun,
    due: Option<chrono::DateTime<Utc>>,
) -> AppResult<Created> {
    if let Some(steps) = state.first_steps.as_ref() {
        let refused = steps
            .insert_if_sold_out(conn, new)
            .await
            .map_err(AppError::internal)?;
        match refused {
            Some(SoldOut::Decided(run_id, step)) => return Ok(Created::Decided(run_id, step)),
            Some(SoldOut::StartedBefore(run)) => return Ok(Created::Existing(*run)),
            None => {}
        }
    }
    let run = match workflow_runs::insert_idempotent(conn, new).await? {
        Inserted::Created(run) => run,
        Inserted::Existing(run) => return Ok(Created::Existing(run)),
    };
    let backstop = workflow_runs::push_start(conn, run.id, due).await?;
    Ok(Created::ToStep(run, backstop))
}

/// The run this participant's `key` started before, as [`started`] answers
/// it, when the request was `refused` (a client error); otherwise the refusal.
async fn earlier_or(
    state: &AppState,
    conn: &mut DbConn,
    user_id: Uuid,
    key: &Option<String>,
    request_hash: &Option<Vec<u8>>,
    refused: AppError,
) -> AppResult<Response> {
    if key.is_none() || !matches!(refused, AppError::Client { .. }) {
        return Err(refused);
    }
    let earlier =
        workflow_runs::by_idempotency_key(conn, Checkout::KIND, Some(user_id), key).await?;
    let Some(run) = earlier else {
        return Err(refused);
    };
    let run = same_request(run, request_hash)?;
    let stepped = step_left_behind(state, conn, &run).await;
    started(run, stepped)
}

/// Takes the run's first step, if this process does, on the connection that
/// created it. A failure leaves the run to the workers (already handed to
/// them): the buyer polls, as for any run.
async fn first_step(
    state: &AppState,
    conn: &mut DbConn,
    run: &workflow_runs::Run,
    backstop: Option<i64>,
) -> Option<FirstStep> {
    let steps = state.first_steps.as_ref()?;
    match steps.take(conn, run, backstop).await {
        Ok(stepped) => stepped,
        Err(e) => {
            tracing::warn!(run_id = %run.id, error = %format!("{e:#}"), "a checkout's first step failed");
            None
        }
    }
}

/// A retry of the request that started `run` takes the run's first step if
/// it is still to be taken: the process that started it died in between.
async fn step_left_behind(
    state: &AppState,
    conn: &mut DbConn,
    run: &workflow_runs::Run,
) -> Option<FirstStep> {
    let untouched =
        run.status == RunStatus::Running.as_str() && run.step == Checkout::initial_step();
    if untouched {
        first_step(state, conn, run, None).await
    } else {
        None
    }
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

/// 202 with the run to poll, where its first step left it (or, for a retry
/// of the key, where it is now).
fn started(run: workflow_runs::Run, stepped: Option<FirstStep>) -> AppResult<Response> {
    let run_id = run.id;
    answer(run_id, stepped.unwrap_or_else(|| as_created(run)))
}

/// The run as created, or as found by its key: no step taken here.
fn as_created(run: workflow_runs::Run) -> FirstStep {
    FirstStep {
        status: run.status,
        step: run.step,
        view: run.view,
        version: run.version,
    }
}

/// 202 with run `run_id` to poll, standing `now`.
fn answer(run_id: Uuid, now: FirstStep) -> AppResult<Response> {
    let FirstStep {
        status,
        step,
        view,
        version,
    } = now;
    let detail = match view {
        serde_json::Value::Object(detail) => detail,
        _ => serde_json::Map::new(),
    };
    let body = CheckoutStarted {
        run_id,
        status,
        step,
        status_url: status_path(run_id),
        version,
        detail,
    };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    point_at_status(&mut response, run_id, version);
    Ok(response)
}
