//! `/v1/bookings`: what participants bought. Readable by the buyer, the event's
//! organizer and admins; anyone else gets 404.

pub mod list;
pub mod refund;
pub mod show;
pub mod tickets;

use boxoffice_models::bookings::{self, Booking};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list::list_bookings))
        .routes(routes!(refund::refund_booking))
        .routes(routes!(show::show_booking))
        .routes(routes!(tickets::booking_tickets))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BookingView {
    pub id: Uuid,
    pub run_id: Uuid,
    pub event_id: Uuid,
    pub status: String,
    pub currency: String,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub total_minor: i64,
    pub created_at: DateTime<Utc>,
}

impl From<&Booking> for BookingView {
    fn from(b: &Booking) -> Self {
        BookingView {
            id: b.id,
            run_id: b.run_id,
            event_id: b.event_id,
            status: b.status.clone(),
            currency: b.currency.clone(),
            subtotal_minor: b.subtotal_minor,
            discount_minor: b.discount_minor,
            total_minor: b.total_minor,
            created_at: b.created_at,
        }
    }
}

/// The booking, if the caller may see it.
async fn visible_booking(state: &AppState, auth: &AuthUser, id: Uuid) -> AppResult<Booking> {
    let mut conn = state.conn().await?;
    let (booking, organizer) = bookings::find_with_organizer(&mut conn, id)
        .await?
        .ok_or_else(|| AppError::not_found("booking"))?;
    if booking.user_id == auth.user_id || organizer == auth.user_id || auth.is_admin() {
        Ok(booking)
    } else {
        Err(AppError::not_found("booking"))
    }
}
