//! `GET /v1/bookings/{id}`.

use axum::extract::State;
use uuid::Uuid;

use super::{BookingView, visible_booking};
use crate::auth::AuthUser;
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Path};
use crate::state::AppState;

/// One booking (the buyer's, the event organizer's, or any for admins).
#[utoipa::path(get, path = "/bookings/{id}", tag = "checkout",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The booking id")),
    responses(
        (status = 200, description = "The booking", body = BookingView),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_booking(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<BookingView>> {
    let booking = visible_booking(&state, &auth, id).await?;
    Ok(Json(BookingView::from(&booking)))
}
