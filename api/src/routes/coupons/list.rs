//! `GET /v1/events/{id}/coupons`.

use axum::extract::State;
use boxoffice_models::coupons;
use uuid::Uuid;

use super::CouponView;
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Path};
use crate::routes::events::support::{Organizer, managed_event};
use crate::state::AppState;

/// The coupons of an event you manage, by code.
#[utoipa::path(get, path = "/events/{id}/coupons", tag = "coupons",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 200, description = "Every coupon of the event", body = Vec<CouponView>),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_coupons(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
) -> AppResult<Json<Vec<CouponView>>> {
    let mut conn = state.conn().await?;
    managed_event(&mut conn, &user, event_id).await?;
    let list = coupons::for_event(&mut conn, event_id).await?;
    Ok(Json(list.iter().map(CouponView::from).collect()))
}
