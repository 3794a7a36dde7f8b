//! `POST /v1/events/{id}/publish`: put a draft on sale.

use axum::extract::State;
use axum::http::HeaderMap;
use boxoffice_models::events::{self, PublishBlocker, PublishOutcome};
use uuid::Uuid;

use super::support::{Organizer, managed_event};
use super::{Audience, EventView, event_view, version_headers};
use crate::cache;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::state::AppState;

/// Publishes a draft. It needs at least one ticket type, a start in the future,
/// and a venue or `online: true`; otherwise 409 `cannot_publish` lists every
/// unmet rule in `reasons` (`not_draft`, `no_ticket_types`, `starts_in_past`,
/// `no_location`).
#[utoipa::path(post, path = "/events/{id}/publish", tag = "events",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 200, description = "The published event", body = EventView),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`cannot_publish`, with `reasons`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn publish_event(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> AppResult<(HeaderMap, Json<EventView>)> {
    let mut conn = state.conn().await?;
    managed_event(&mut conn, &user, id).await?;
    let event = match events::publish(&mut conn, id).await? {
        PublishOutcome::Published(event) => event,
        PublishOutcome::NotFound => return Err(AppError::not_found("event")),
        PublishOutcome::Refused(blockers) => return Err(cannot_publish(&blockers)),
    };
    let view = event_view(&mut conn, &event, Audience::Manager).await?;
    drop(conn);
    cache::invalidate_event(&state, id).await;
    Ok((version_headers(event.version), Json(view)))
}

fn cannot_publish(blockers: &[PublishBlocker]) -> AppError {
    let describe = |blocker: &PublishBlocker| match blocker {
        PublishBlocker::NotDraft(status) => format!("it is {}, not a draft", status.as_str()),
        PublishBlocker::NoTicketTypes => "it has no ticket types".to_owned(),
        PublishBlocker::StartsInPast => "its start is not in the future".to_owned(),
        PublishBlocker::NoLocation => "it has neither a venue nor online: true".to_owned(),
    };
    let detail = blockers.iter().map(describe).collect::<Vec<_>>().join("; ");
    let codes: Vec<&str> = blockers.iter().map(|b| b.code()).collect();
    AppError::conflict(
        "cannot_publish",
        format!("the event can't be published: {detail}"),
    )
    .with("reasons", codes)
}
