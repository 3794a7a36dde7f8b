//! Starting a workflow run: the one function every route that starts a run
//! uses. The run and the message that starts it are written in one
//! transaction; an `Idempotency-Key` already used by the owner for this kind
//! returns the earlier run (422 when it came with another request).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use boxoffice_models::workflow_runs::{self, Inserted, NewRun, Run};
use boxoffice_workflows::engine::{RunStatus, Workflow};
use diesel_async::AsyncPgConnection;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::extract::Json;

/// Who starts the run and how to recognise a retry of the same request.
pub struct Starter {
    pub owner_id: Uuid,
    pub idempotency_key: String,
    /// SHA-256 of the request's canonical JSON.
    pub request_hash: Vec<u8>,
    pub correlation_id: Option<String>,
}

impl Starter {
    pub fn new<B: Serialize>(
        owner_id: Uuid,
        idempotency_key: String,
        body: &B,
        correlation_id: Option<String>,
    ) -> Self {
        let canonical = serde_json::to_vec(body).unwrap_or_default();
        Starter {
            owner_id,
            idempotency_key,
            request_hash: Sha256::digest(&canonical).to_vec(),
            correlation_id,
        }
    }
}

/// The run this owner already started of kind `W` with this key, if any; 422
/// when the key came with another request. Asked before validating a request
/// again: a client retrying after a lost answer must learn what became of its
/// first attempt even when the request would no longer pass.
pub async fn earlier<W: Workflow>(
    conn: &mut AsyncPgConnection,
    starter: &Starter,
) -> AppResult<Option<Run>> {
    let key = Some(starter.idempotency_key.clone());
    match workflow_runs::by_idempotency_key(conn, W::KIND, Some(starter.owner_id), &key).await? {
        Some(run) => Ok(Some(same_request(run, &starter.request_hash)?)),
        None => Ok(None),
    }
}

/// Starts a run of kind `W` from `state` (or returns the earlier run of the key).
pub async fn start<W: Workflow>(
    conn: &mut AsyncPgConnection,
    starter: &Starter,
    state: &W::State,
) -> AppResult<(Run, bool)> {
    let new = NewRun {
        id: Uuid::now_v7(),
        kind: W::KIND.into(),
        status: RunStatus::Running.as_str().into(),
        step: W::initial_step().into(),
        state: serde_json::to_value(state).map_err(AppError::internal)?,
        correlation_id: starter.correlation_id.clone(),
        owner_id: Some(starter.owner_id),
        idempotency_key: Some(starter.idempotency_key.clone()),
        request_hash: Some(starter.request_hash.clone()),
        view: serde_json::to_value(W::view(state)).map_err(AppError::internal)?,
        parent_id: None,
        child_key: None,
    };
    match workflow_runs::start(conn, &new).await? {
        Inserted::Created(run) => {
            metrics::counter!("workflows_started_total", "kind" => W::KIND).increment(1);
            Ok((run, true))
        }
        Inserted::Existing(run) => Ok((same_request(run, &starter.request_hash)?, false)),
    }
}

/// Gives a run just started in this transaction (before anyone saw it) the
/// state its route completed after inserting it.
pub async fn set_initial_state<W: Workflow>(
    conn: &mut AsyncPgConnection,
    run: Run,
    state: &W::State,
) -> AppResult<Run> {
    let state_json = serde_json::to_value(state).map_err(AppError::internal)?;
    let view = serde_json::to_value(W::view(state)).map_err(AppError::internal)?;
    Ok(workflow_runs::set_initial_state(conn, run.id, &state_json, &view).await?)
}

fn same_request(run: Run, request_hash: &[u8]) -> AppResult<Run> {
    if run.request_hash.as_deref() == Some(request_hash) {
        return Ok(run);
    }
    Err(AppError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was used with a different request",
    ))
}

/// What a route that started a run answers: 202, the run to poll, `Location`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunStarted {
    pub run_id: Uuid,
    pub status: String,
    pub step: String,
    /// Poll this for progress (`GET`, with `If-None-Match` and `?wait=`).
    pub status_url: String,
    /// The run's version this answer shows; the answer's `ETag` names it, so
    /// the first poll can wait for the next change at once.
    pub version: i32,
}

pub fn status_path(run_id: Uuid) -> String {
    format!("/v1/workflows/{run_id}")
}

impl RunStarted {
    pub fn of(run: &Run) -> Self {
        RunStarted {
            run_id: run.id,
            status: run.status.clone(),
            step: run.step.clone(),
            status_url: status_path(run.id),
            version: run.version,
        }
    }
}

/// The `ETag` of run `id`'s status at `version`, as `GET /v1/workflows/{id}`
/// sends it.
pub fn etag(id: Uuid, version: i32) -> String {
    format!("\"{}-{}\"", id.simple(), version)
}

/// The run and version an `ETag` made by [`etag`] names (also in its weak
/// form, `W/`); `None` for a tag in any other form.
pub fn parse_etag(raw: &str) -> Option<(Uuid, i32)> {
    let tag = raw.trim().trim_start_matches("W/").trim_matches('"');
    let (id, version) = tag.rsplit_once('-')?;
    // Only the form `etag` writes: 32 lowercase hex digits.
    let simple = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    Some((
        Uuid::try_parse(id).ok().filter(|_| simple)?,
        version.parse().ok()?,
    ))
}

/// Points `Location` at the run's status, and gives the answer the `ETag` of
/// the status it shows (at `version`): a client that started a run polls with
/// `If-None-Match` and `?wait=` from its first request, and hears only of
/// what changed since this answer, instead of first reading again what it was
/// just told.
pub fn point_at_status(response: &mut Response, run_id: Uuid, version: i32) {
    set_location(response, run_id);
    if let Ok(value) = HeaderValue::from_str(&etag(run_id, version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
}

/// Points `Location` at the run's status.
pub fn set_location(response: &mut Response, run_id: Uuid) {
    if let Ok(value) = HeaderValue::from_str(&status_path(run_id)) {
        response.headers_mut().insert(header::LOCATION, value);
    }
}

/// 202 with the run to poll.
pub fn accepted(run: Run) -> AppResult<Response> {
    let mut response = (StatusCode::ACCEPTED, Json(RunStarted::of(&run))).into_response();
    point_at_status(&mut response, run.id, run.version);
    Ok(response)
}
