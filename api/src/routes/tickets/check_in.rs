//! `POST /v1/events/{id}/check-in`: admit a ticket at the door.

use axum::extract::State;
use axum::http::StatusCode;
use boxoffice_models::ticket_codes::{self, QrError};
use boxoffice_models::tickets::{self, CheckIn, Ticket, TicketStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::routes::events::support::{Organizer, managed_event};
use crate::state::AppState;

/// Longer than any payload this system signs (about 155 characters); anything
/// longer is refused before it is decoded.
const MAX_PAYLOAD_CHARS: usize = 1024;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CheckInRequest {
    /// The text of the ticket's QR code (`BX1.…`).
    pub qr_payload: String,
}

/// The ticket just admitted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckInView {
    pub ticket_id: Uuid,
    pub event_id: Uuid,
    pub booking_id: Uuid,
    pub ticket_type_id: Uuid,
    pub number: String,
    pub checked_in_at: DateTime<Utc>,
    /// Who scanned it.
    pub checked_in_by: Uuid,
}

/// Checks a ticket in. The payload's signature is verified first; then one
/// conditional UPDATE admits the ticket only if it is of this event, valid and
/// not yet checked in, so two doors scanning the same ticket at once admit it
/// once. A second scan gets 409 `already_checked_in` with the first scan's
/// `checked_in_at`.
#[utoipa::path(post, path = "/events/{id}/check-in", tag = "tickets",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id")),
    request_body = CheckInRequest,
    responses(
        (status = 200, description = "Checked in", body = CheckInView),
        (status = 400, description = "`invalid_path`, `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_checked_in` (with `checked_in_at`, `checked_in_by`), \
            `ticket_void` (refunded or cancelled), `ticket_not_valid` (a refund is under way)",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_ticket` (forged, malformed or unknown; `reason` says which), \
            `wrong_event` (a ticket of another event), `invalid_body`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn check_in(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
    Json(body): Json<CheckInRequest>,
) -> AppResult<Json<CheckInView>> {
    // Ownership before the payload: whoever may not scan for this event learns
    // nothing about the tickets they hold.
    let mut conn = state.conn().await?;
    managed_event(&mut conn, &user, event_id).await?;

    if body.qr_payload.chars().count() > MAX_PAYLOAD_CHARS {
        return Err(invalid_ticket(&QrError::Malformed(
            "longer than any ticket payload",
        )));
    }
    let claims = ticket_codes::verify(&state.config.ticket_public_key, &body.qr_payload)
        .map_err(|e| invalid_ticket(&e))?;
    if claims.event_id != event_id {
        return Err(wrong_event(claims.ticket_id));
    }

    match tickets::check_in(&mut conn, &claims, event_id, user.user_id).await? {
        CheckIn::CheckedIn(ticket) => {
            tracing::info!(ticket.id = %ticket.id, event.id = %event_id, user.id = %user.user_id, "ticket checked in");
            Ok(Json(view(&ticket)?))
        }
        CheckIn::AlreadyCheckedIn {
            ticket,
            checked_in_at,
        } => Err(AppError::conflict(
            "already_checked_in",
            format!(
                "this ticket was checked in at {}",
                checked_in_at.to_rfc3339()
            ),
        )
        .with("ticket_id", ticket.id)
        .with("checked_in_at", checked_in_at)
        .with("checked_in_by", ticket.checked_in_by)),
        CheckIn::WrongEvent(ticket) => Err(wrong_event(ticket.id)),
        CheckIn::NotValid(ticket) => Err(not_valid(&ticket)),
        CheckIn::Unknown => Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_ticket",
            "the code is signed but names no ticket issued here",
        )
        .with("reason", "unknown_ticket")),
    }
}

fn view(ticket: &Ticket) -> AppResult<CheckInView> {
    let (Some(checked_in_at), Some(checked_in_by)) = (ticket.checked_in_at, ticket.checked_in_by)
    else {
        return Err(AppError::internal(anyhow::anyhow!(
            "a checked-in ticket without its check-in"
        )));
    };
    Ok(CheckInView {
        ticket_id: ticket.id,
        event_id: ticket.event_id,
        booking_id: ticket.booking_id,
        ticket_type_id: ticket.ticket_type_id,
        number: ticket.number.clone(),
        checked_in_at,
        checked_in_by,
    })
}

fn invalid_ticket(error: &QrError) -> AppError {
    AppError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_ticket",
        error.to_string(),
    )
    .with("reason", error.reason())
}

fn wrong_event(ticket_id: Uuid) -> AppError {
    AppError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "wrong_event",
        "this ticket is for another event",
    )
    .with("ticket_id", ticket_id)
}

fn not_valid(ticket: &Ticket) -> AppError {
    let error = match ticket.status {
        TicketStatus::Void => {
            AppError::conflict("ticket_void", "this ticket was refunded or cancelled")
        }
        TicketStatus::RefundPending | TicketStatus::Valid => AppError::conflict(
            "ticket_not_valid",
            "this ticket is being refunded and admits no one",
        ),
    };
    error
        .with("ticket_id", ticket.id)
        .with("ticket_status", ticket.status.as_str())
}
