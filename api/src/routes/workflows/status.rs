//! `GET /v1/workflows/{id}`: the run's status, with an `ETag` from its version,
//! `If-None-Match` → 304, and `?wait=N` to long-poll until it changes.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use boxoffice_models::workflow_runs;
use serde::Deserialize;
use uuid::Uuid;

use super::view::WorkflowView;
use crate::auth::AuthUser;
use crate::change_feed::RunView;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Path, Query};
use crate::runs::{etag, parse_etag};
use crate::state::AppState;

const MAX_WAIT_SECS: u64 = 30;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    /// Seconds to wait (at most 30) for the run to change from the version in
    /// `If-None-Match` before answering (without `If-None-Match`, it answers
    /// at once). A process that is stopping answers at once (`304`): poll
    /// again.
    pub wait: Option<u64>,
}

/// The run and version of the status the client already has, from
/// `If-None-Match` (`"<run, 32 hex digits>-<version>"`, as [`etag`] makes
/// it). Extracted on its own, so that a long poll keeps these few bytes while
/// it waits rather than a copy of every header of its request.
pub struct IfNoneMatch(Option<(Uuid, i32)>);

impl IfNoneMatch {
    /// The version it names of run `run_id`; `None` for another run's tag.
    fn version_of(&self, run_id: Uuid) -> Option<i32> {
        self.0
            .filter(|(run, _)| *run == run_id)
            .map(|(_, version)| version)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(IfNoneMatch(
            parts
                .headers
                .get(header::IF_NONE_MATCH)
                .and_then(|raw| raw.to_str().ok())
                .and_then(parse_etag),
        ))
    }
}

/// The run's view at `at_least` its version or newer (from memory when it is
/// kept there and that new, else from Postgres), if the caller may see it.
async fn load_visible(
    state: &AppState,
    auth: &AuthUser,
    id: Uuid,
    at_least: Option<i32>,
) -> AppResult<RunView> {
    let kept = &state.change_feed.views().runs;
    let fresh_enough = |view: &RunView| at_least.is_none_or(|v| view.version >= v);
    let view = match kept.get(&id).filter(fresh_enough) {
        Some(view) => view,
        // Boxed: a read is the rare case, and a long poll's future would
        // otherwise keep room for a pool wait and a query while it waits.
        None => Box::pin(read_and_keep(state, id)).await?,
    };
    // Someone else's run does not exist, as far as the caller can tell.
    if view.owner_id != Some(auth.user_id) && !auth.is_admin() {
        return Err(AppError::not_found("workflow"));
    }
    Ok(view)
}

/// The run's view from Postgres, kept in memory for the next read.
async fn read_and_keep(state: &AppState, id: Uuid) -> AppResult<RunView> {
    // Registered before the read, so a change committed meanwhile stops the store.
    let fill = state.change_feed.views().runs.begin_fill(id);
    let mut conn = state.conn().await?;
    let run = workflow_runs::find(&mut conn, id)
        .await?
        .ok_or_else(|| AppError::not_found("workflow"))?;
    drop(conn);
    let view = WorkflowView::rendered(&run);
    fill.store(view.clone());
    Ok(view)
}

/// The status of a workflow run (the owner's, or any for admins).
#[utoipa::path(get, path = "/workflows/{id}", tag = "checkout",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The run id"), StatusQuery,
           ("If-None-Match" = Option<String>, Header, description = "The ETag of the status you have")),
    responses(
        (status = 200, description = "The run", body = WorkflowView),
        (status = 304, description = "Unchanged since the ETag you sent"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub fn workflow_status(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Query(query): Query<StatusQuery>,
    if_none_match: IfNoneMatch,
) -> impl Future<Output = AppResult<Response>> {
    let known = if_none_match.version_of(id);
    // A block rather than an `async fn`: it holds what it captured once,
    // where a function's future keeps its arguments twice, as passed and as
    // bound (a long poll holds this for up to 30 s).
    async move {
        let wait = query.wait.unwrap_or(0);
        if wait > MAX_WAIT_SECS {
            return Err(AppError::bad_request(
                "invalid_query",
                format!("wait is at most {MAX_WAIT_SECS} seconds"),
            ));
        }
        let mut view = load_visible(&state, &auth, id, known).await?;
        // A long poll waits only for a client that has seen the run: without
        // an ETag, what it has now is news.
        if wait > 0
            && known == Some(view.version)
            && state
                .run_watcher
                .wait_past(
                    id,
                    view.version,
                    tokio::time::Instant::now() + Duration::from_secs(wait),
                    // Still kept at that version: no change heard since.
                    || {
                        let kept = &state.change_feed.views().runs;
                        kept.get(&id).is_some_and(|v| v.version == view.version)
                    },
                )
                .await
        {
            view = load_visible(&state, &auth, id, Some(view.version + 1)).await?;
        }
        let tag = HeaderValue::from_str(&etag(id, view.version)).ok();
        let mut response = if known == Some(view.version) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                view.body,
            )
                .into_response()
        };
        if let Some(tag) = tag {
            response.headers_mut().insert(header::ETAG, tag);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_names_the_run_and_version_that_etag_wrote() {
        let run = Uuid::now_v7();
        let written = etag(run, 7);
        assert_eq!(parse_etag(&written), Some((run, 7)));
        assert_eq!(parse_etag(&format!("W/{written}")), Some((run, 7)));
        assert_eq!(IfNoneMatch(parse_etag(&written)).version_of(run), Some(7));
        assert_eq!(
            IfNoneMatch(parse_etag(&written)).version_of(Uuid::now_v7()),
            None
        );
    }

    #[test]
    fn a_tag_in_another_form_names_nothing() {
        let run = Uuid::now_v7();
        for raw in [
            format!("\"{}-7\"", run.hyphenated()),
            format!("\"{}-7\"", run.simple().to_string().to_uppercase()),
            format!("\"{}-seven\"", run.simple()),
            format!("\"{}\"", run.simple()),
            "*".to_owned(),
        ] {
            assert_eq!(parse_etag(&raw), None, "{raw}");
        }
    }
}
