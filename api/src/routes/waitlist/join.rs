//! `POST /v1/events/{id}/waitlist`: join the waitlist of a ticket type.

use axum::extract::State;
use axum::http::StatusCode;
use boxoffice_models::events::{self, EventStatus};
use boxoffice_models::ticket_types;
use boxoffice_models::waitlist::{self, JoinRefusal, NewEntry};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::EntryView;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::state::AppState;

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub ticket_type_id: Uuid,
    /// 1 to the ticket type's per-order limit.
    #[schema(minimum = 1)]
    pub quantity: i32,
}

/// Joins the waitlist of a ticket type that cannot sell this quantity now.
///
/// Entries are served vip first, then standard, each tier by join time: they
/// are offered in that order while they fit in the units that come back (an
/// unpaid checkout, a refund, more capacity, a declined or expired offer).
/// Units that come back while anyone waits are reserved for the waitlist at
/// once: the public cannot buy them. When the first entry needs more units
/// than are free, it keeps every unit that comes back for itself for a
/// window (30 minutes by default); after that window the smaller entries
/// behind it are offered the units it cannot use, and its window starts
/// again. So a large entry is never passed over while units come back, and
/// units never sit idle for longer than one window while others wait.
/// An offer holds the tickets for the event's `waitlist_offer_minutes` and
/// is announced by email; accept it with `POST /v1/waitlist/{id}/accept`.
#[utoipa::path(post, path = "/events/{id}/waitlist", tag = "waitlist",
    security(("bearer" = [])),
    request_body = JoinRequest,
    params(("id" = Uuid, Path, description = "The event id")),
    responses(
        (status = 201, description = "On the waitlist; `position` is how many units wait ahead", body = EntryView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such published event, or no such ticket type of it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`tickets_available` (the type can sell this quantity now; with `available`), `already_waiting` (an active entry of this participant for this type, with `entry_id`), `waitlist_disabled`, `event_cancelled`, `event_over`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: quantity out of range", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn join_waitlist(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(event_id): Path<Uuid>,
    Json(req): Json<JoinRequest>,
) -> AppResult<(StatusCode, Json<EntryView>)> {
    let mut conn = state.conn().await?;
    let event = events::find(&mut conn, event_id)
        .await?
        .filter(|e| e.status != EventStatus::Draft)
        .ok_or_else(|| AppError::not_found("event"))?;
    if event.status == EventStatus::Cancelled {
        return Err(AppError::conflict(
            "event_cancelled",
            "the event was cancelled",
        ));
    }
    if event.status == EventStatus::Completed || event.ends_at <= Utc::now() {
        return Err(AppError::conflict("event_over", "the event is over"));
    }
    if !event.waitlist_enabled {
        return Err(AppError::conflict(
            "waitlist_disabled",
            "this event takes no waitlist",
        ));
    }
    let ticket_type = ticket_types::find(&mut conn, event_id, req.ticket_type_id)
        .await?
        .ok_or_else(|| AppError::not_found("ticket type"))?;
    let limit = ticket_type
        .max_per_order
        .unwrap_or(event.max_tickets_per_order);
    if !(1..=limit).contains(&req.quantity) {
        return Err(AppError::validation(
            "quantity",
            format!("quantity must be between 1 and {limit}"),
        ));
    }
    let joined = waitlist::join(
        &mut conn,
        &NewEntry {
            participant_id: auth.user_id,
            event_id,
            ticket_type_id: req.ticket_type_id,
            quantity: req.quantity,
        },
    )
    .await?;
    let entry = match joined {
        Ok(entry) => entry,
        Err(JoinRefusal::TicketsAvailable { available }) => {
            return Err(AppError::conflict(
                "tickets_available",
                "this ticket type can sell that many now: check out instead",
            )
            .with("available", available));
        }
        Err(JoinRefusal::AlreadyWaiting { entry_id }) => {
            return Err(AppError::conflict(
                "already_waiting",
                "you are already on this ticket type's waitlist",
            )
            .with("entry_id", entry_id));
        }
        Err(JoinRefusal::NoSuchTicketType) => return Err(AppError::not_found("ticket type")),
    };
    metrics::counter!("waitlist_joins_total").increment(1);
    let view = EntryView::with_position(&mut conn, &entry).await?;
    Ok((StatusCode::CREATED, Json(view)))
}
