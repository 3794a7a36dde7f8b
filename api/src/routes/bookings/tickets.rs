//! `GET /v1/bookings/{id}/tickets`.

use axum::extract::State;
use boxoffice_models::tickets;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::visible_booking;
use crate::auth::AuthUser;
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Path};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TicketView {
    pub id: Uuid,
    pub ticket_type_id: Uuid,
    pub number: String,
    /// valid | refund_pending | void
    pub status: String,
    /// What the QR code encodes; verifiable offline with `/v1/tickets/public-key`.
    pub qr_payload: String,
    pub checked_in_at: Option<DateTime<Utc>>,
}

/// The tickets of a booking.
#[utoipa::path(get, path = "/bookings/{id}/tickets", tag = "checkout",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The booking id")),
    responses(
        (status = 200, description = "The booking's tickets", body = Vec<TicketView>),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn booking_tickets(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<Vec<TicketView>>> {
    let booking = visible_booking(&state, &auth, id).await?;
    let mut conn = state.conn().await?;
    let list = tickets::list_for_booking(&mut conn, booking.id).await?;
    Ok(Json(
        list.into_iter()
            .map(|t| TicketView {
                id: t.id,
                ticket_type_id: t.ticket_type_id,
                number: t.number,
                status: t.status.as_str().to_owned(),
                qr_payload: t.qr_payload,
                checked_in_at: t.checked_in_at,
            })
            .collect(),
    ))
}
