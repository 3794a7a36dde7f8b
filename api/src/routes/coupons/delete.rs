//! `DELETE /v1/events/{id}/coupons/{coupon_id}`.

use axum::extract::State;
use axum::http::StatusCode;
use boxoffice_models::coupons::{self, CouponDelete};
use uuid::Uuid;

use crate::error::{AppError, AppResult, Problem};
use crate::extract::Path;
use crate::routes::events::support::{Organizer, db_error, managed_event};
use crate::routes::ticket_types::refusal;
use crate::state::AppState;

/// Deletes a coupon nobody has used yet (a used one can be expired with
/// `valid_until` instead, so orders keep pointing at it).
#[utoipa::path(delete, path = "/events/{id}/coupons/{coupon_id}", tag = "coupons",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Event id"),
        ("coupon_id" = Uuid, Path, description = "Coupon id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`coupon_used` (with `used`), `event_not_editable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_coupon(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path((event_id, id)): Path<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    let mut conn = state.conn().await?;
    managed_event(&mut conn, &user, event_id).await?;
    match coupons::delete(&mut conn, event_id, id)
        .await
        .map_err(db_error)?
    {
        CouponDelete::Deleted => Ok(StatusCode::NO_CONTENT),
        CouponDelete::Refused(r) => Err(refusal(r, "coupon")),
        CouponDelete::AlreadyUsed { used } => Err(AppError::conflict(
            "coupon_used",
            format!("the coupon was used {used} times; expire it with valid_until instead"),
        )
        .with("used", used)),
    }
}
