//! `POST /v1/events/{id}/cancel`: call off a published event.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use boxoffice_models::events::{self, StatusChange};
use boxoffice_models::{refunds, waitlist};
use boxoffice_workflows::event_cancellation::{CancellationState, EventCancellation};
use diesel_async::AsyncConnection;
use serde::Serialize;
use uuid::Uuid;

use super::support::{Organizer, managed_event};
use super::{Audience, EventView, event_view, version_headers};
use crate::cache;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::runs::{self, RunStarted, Starter};
use crate::state::AppState;

/// A cancellation whose bookings are being refunded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CancellationStarted {
    #[serde(flatten)]
    pub run: RunStarted,
    pub event: EventView,
}

/// Cancels a published event: it leaves the listing and stops selling at once
/// (new checkouts get `409 event_cancelled`, checkouts in flight are
/// compensated, a payment that arrives later is refunded). With sales, an
/// `event_cancellation` run refunds every confirmed booking in full, tells each
/// buyer, and answers 202 with the run to poll; without, 200 with the event. A
/// draft is deleted rather than cancelled.
#[utoipa::path(post, path = "/events/{id}/cancel", tag = "events",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 200, description = "The cancelled event (nothing was sold)", body = EventView),
        (status = 202, description = "Cancelled; its bookings are being refunded by the run", body = CancellationStarted, headers(("ETag" = String, description = "The event's version, for `If-Match` (the run's is `run.version`)"), ("Location" = String, description = "The run's status"))),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`event_not_published`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel_event(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> AppResult<Response> {
    let mut conn = state.conn().await?;
    managed_event(&mut conn, &user, id).await?;
    let settings = state.config.clone();
    // The event's status and the run that refunds its bookings change together.
    let (event, run) = conn
        .transaction::<_, AppError, _>(async |conn| {
            let event = match events::cancel(conn, id).await? {
                StatusChange::Done(event) => event,
                StatusChange::NotFound => return Err(AppError::not_found("event")),
                StatusChange::WrongStatus(status) => {
                    return Err(AppError::conflict(
                        "event_not_published",
                        format!(
                            "only a published event can be cancelled; this one is {}",
                            status.as_str()
                        ),
                    )
                    .with("event_status", status.as_str()));
                }
            };
            super::mailings::event_cancelled(conn, id).await?;
            waitlist::end_for_cancelled_event(conn, id).await?;
            let sold = refunds::count_to_cancel(conn, id).await?;
            let in_flight = refunds::open_checkouts(conn, id).await?;
            if sold == 0 && in_flight == 0 {
                return Ok((event, None));
            }
            // One cancellation per event: the event can be cancelled once.
            let starter = Starter::new(user.user_id, format!("event-cancellation:{id}"), &id, None);
            let cancellation = CancellationState::new(
                id,
                settings.cancellation_max_in_flight,
                settings.refund_poll_secs,
            );
            let (run, _) = runs::start::<EventCancellation>(conn, &starter, &cancellation).await?;
            Ok((event, Some(run)))
        })
        .await?;
    let view = event_view(&mut conn, &event, Audience::Manager).await?;
    drop(conn);
    cache::invalidate_event(&state, id).await;
    let headers: HeaderMap = version_headers(event.version);
    Ok(match run {
        None => (headers, Json(view)).into_response(),
        Some(run) => {
            let body = CancellationStarted {
                run: RunStarted::of(&run),
                event: view,
            };
            let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
            response.headers_mut().extend(headers);
            // The answer's ETag is the event's (`version_headers`); the run's
            // version is in the body.
            runs::set_location(&mut response, run.id);
            response
        }
    })
}
