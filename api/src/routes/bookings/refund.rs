//! `POST /v1/bookings/{id}/refunds`: money back for tickets of a booking, or a
//! sum of goodwill, as a durable `refund` run.

use axum::extract::State;
use axum::response::Response;
use boxoffice_models::bookings;
use boxoffice_models::events;
use boxoffice_models::refunds::{self, Refusal, Request, Scope};
use boxoffice_workflows::money::Money;
use boxoffice_workflows::refund::{Refund, RefundState, RequestedBy};
use chrono::{Duration, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::idempotency_key::{self, IdempotencyKey};
use crate::middleware::request_id::RequestId;
use crate::routes::events::support;
use crate::runs::{self, RunStarted, Starter};
use crate::state::AppState;

const MAX_TICKETS: usize = 100;
const MAX_REASON: usize = 500;

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// The tickets to refund; omitted: every ticket of the booking still valid.
    #[serde(default)]
    pub ticket_ids: Option<Vec<Uuid>>,
    /// A sum to give back without voiding tickets (organizers and admins only).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub amount_minor: Option<i64>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Refunds tickets of a booking (or, for organizers and admins, a sum of
/// goodwill). The buyer may refund until the event's refund window closes
/// (`refundable_until_hours_before` hours before it starts) and not a ticket
/// already used; the event's organizer and admins at any time. The amount is
/// what was paid: the order's discount is spread over its tickets. Answers at
/// once with the run to poll; the money is back when the run completes.
#[utoipa::path(post, path = "/bookings/{id}/refunds", tag = "checkout",
    security(("bearer" = [])),
    request_body = RefundRequest,
    params(("id" = Uuid, Path, description = "The booking id"), IdempotencyKey),
    responses(
        (status = 202, description = "The refund started (or was started before with this key)", body = RunStarted, headers(("ETag" = String, description = "The version of the run's status this answer shows, as `GET /v1/workflows/{id}` tags it: send it as `If-None-Match` with `?wait=` to hear of the next change"), ("Location" = String, description = "The run's status"))),
        (status = 400, description = idempotency_key::REQUIRED_RESPONSE, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: a sum of goodwill is for organizers and admins", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such booking among yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`refund_window_closed`, `not_refundable`, `ticket_used`, `ticket_not_refundable`, `amount_exceeds_refundable`, `nothing_to_refund`, `event_cancelled`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn refund_booking(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    request_id: Option<axum::Extension<RequestId>>,
    IdempotencyKey(key): IdempotencyKey,
    Json(req): Json<RefundRequest>,
) -> AppResult<Response> {
    validate(&req)?;
    let mut conn = state.conn().await?;
    let (booking, organizer) = bookings::find_with_organizer(&mut conn, id)
        .await?
        .ok_or_else(|| AppError::not_found("booking"))?;
    let requested_by = if auth.is_admin() {
        RequestedBy::Admin
    } else if organizer == auth.user_id {
        RequestedBy::Organizer
    } else if booking.user_id == auth.user_id {
        RequestedBy::Buyer
    } else {
        return Err(AppError::not_found("booking"));
    };
    let starter = Starter::new(
        auth.user_id,
        key,
        &(id, &req),
        request_id.map(|r| r.0.0.clone()),
    );
    // A retry is answered from its run before anything is checked again.
    if let Some(run) = runs::earlier::<Refund>(&mut conn, &starter).await? {
        return runs::accepted(run);
    }
    let event = events::find(&mut conn, booking.event_id)
        .await?
        .ok_or_else(|| AppError::not_found("booking"))?;
    if event.status == events::EventStatus::Cancelled {
        return Err(AppError::conflict(
            "event_cancelled",
            "the event was cancelled: every booking is being refunded",
        ));
    }
    if requested_by == RequestedBy::Buyer {
        if req.amount_minor.is_some() {
            return Err(AppError::forbidden(
                "a sum of goodwill is refunded by the event's organizer or an admin",
            ));
        }
        let Some(hours) = event.refundable_until_hours_before else {
            return Err(AppError::conflict(
                "not_refundable",
                "this event's tickets are not refundable",
            ));
        };
        let closes_at = event.starts_at - Duration::hours(i64::from(hours));
        if Utc::now() >= closes_at {
            return Err(AppError::conflict(
                "refund_window_closed",
                format!("refunds closed {hours} hours before the event"),
            )
            .with("closed_at", closes_at.to_rfc3339()));
        }
    }
    let scope = match (&req.amount_minor, &req.ticket_ids) {
        (Some(amount), _) => Scope::Amount(*amount),
        (None, Some(ids)) => Scope::Tickets(ids.clone()),
        (None, None) => Scope::Everything,
    };
    let poll_after_secs = state.config.refund_poll_secs;
    let run = conn
        .transaction::<_, AppError, _>(async |conn| {
            // The run first: a concurrent retry with the same key waits on its
            // row and is answered with it, rather than refused below.
            let placeholder = RefundState::new(
                booking.id,
                booking.event_id,
                booking.user_id,
                requested_by,
                Vec::new(),
                Money::zero(booking.currency.clone()),
                None,
                req.reason.clone(),
                poll_after_secs,
            );
            let (run, created) = runs::start::<Refund>(conn, &starter, &placeholder).await?;
            if !created {
                return Ok(run);
            }
            let reserved = refunds::reserve(
                conn,
                &Request {
                    run_id: run.id,
                    booking_id: booking.id,
                    scope: scope.clone(),
                    requested_by: requested_by.as_str(),
                    allow_checked_in: requested_by != RequestedBy::Buyer,
                    reason: req.reason.as_deref(),
                },
            )
            .await?
            .map_err(refused)?;
            let state = RefundState::new(
                booking.id,
                booking.event_id,
                booking.user_id,
                requested_by,
                reserved.ticket_ids.clone(),
                Money::new(reserved.amount_minor, booking.currency.clone()),
                booking
                    .payment_intent_id
                    .clone()
                    .filter(|_| reserved.amount_minor > 0),
                req.reason.clone(),
                poll_after_secs,
            );
            runs::set_initial_state::<Refund>(conn, run, &state).await
        })
        .await?;
    runs::accepted(run)
}

fn validate(req: &RefundRequest) -> AppResult<()> {
    if let Some(ids) = &req.ticket_ids {
        if ids.is_empty() || ids.len() > MAX_TICKETS {
            return Err(AppError::validation(
                "ticket_ids",
                format!("1 to {MAX_TICKETS} tickets, or omit it for all"),
            ));
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != ids.len() {
            return Err(AppError::validation(
                "ticket_ids",
                "a ticket is named twice",
            ));
        }
    }
    if let Some(amount) = req.amount_minor {
        if amount < 1 {
            return Err(AppError::validation(
                "amount_minor",
                "a positive amount in minor units",
            ));
        }
        if req.ticket_ids.is_some() {
            return Err(AppError::validation(
                "amount_minor",
                "give either ticket_ids or amount_minor",
            ));
        }
    }
    if let Some(reason) = &req.reason {
        // The shared free-text rule: PostgreSQL's text cannot hold NUL (the
        // insert would fail with a 500), and other control characters do not
        // belong in what operators read.
        support::text("reason", reason, MAX_REASON)?;
    }
    Ok(())
}

fn refused(refusal: Refusal) -> AppError {
    match refusal {
        Refusal::NoSuchBooking => AppError::not_found("booking"),
        Refusal::UnknownTicket(id) => {
            AppError::conflict("ticket_not_refundable", "a ticket is not of this booking")
                .with("ticket_id", id.to_string())
        }
        Refusal::NotRefundable { ticket_id, status } => AppError::conflict(
            "ticket_not_refundable",
            "a ticket is already refunded or being refunded",
        )
        .with("ticket_id", ticket_id.to_string())
        .with("ticket_status", status.as_str()),
        Refusal::Used(id) => {
            AppError::conflict("ticket_used", "a ticket was already used at the door")
                .with("ticket_id", id.to_string())
        }
        Refusal::AmountTooLarge { left_minor } => AppError::conflict(
            "amount_exceeds_refundable",
            "more than is left of what was paid",
        )
        .with("refundable_minor", left_minor),
        Refusal::NothingToRefund => AppError::conflict(
            "nothing_to_refund",
            "nothing is left to refund on this booking",
        ),
    }
}
