//! `POST /v1/events/{id}/coupons`: add a discount code.

use axum::extract::State;
use axum::http::StatusCode;
use boxoffice_models::coupons::{self, NewCoupon};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{CouponKindView, CouponView, written};
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Path};
use crate::routes::events::support::{self, Organizer, db_error, managed_event};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCouponRequest {
    /// Unique per event, ignoring case.
    #[schema(example = "WELCOME10", min_length = 3, max_length = 40)]
    pub code: String,
    pub kind: CouponKindView,
    /// Percent: 1–100. Fixed: minor units of the event's currency.
    #[schema(example = 10)]
    pub value: i64,
    /// Default: unlimited.
    #[schema(minimum = 1)]
    pub max_uses: Option<i32>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    /// Restricts the coupon to these ticket types of the event; default: all.
    #[serde(default)]
    pub ticket_type_ids: Vec<Uuid>,
}

/// Creates a coupon for an event you manage.
#[utoipa::path(post, path = "/events/{id}/coupons", tag = "coupons",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id")),
    request_body = CreateCouponRequest,
    responses(
        (status = 201, description = "The new coupon", body = CouponView),
        (status = 400, description = "`invalid_path`, `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`duplicate_coupon_code`, `event_not_editable`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, `invalid_body`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_coupon(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
    Json(body): Json<CreateCouponRequest>,
) -> AppResult<(StatusCode, Json<CouponView>)> {
    let kind = body.kind.into();
    let new = NewCoupon {
        id: Uuid::now_v7(),
        event_id,
        code: super::code(&body.code)?,
        kind,
        value: super::value_for(kind, body.value)?,
        max_uses: body.max_uses.map(super::max_uses).transpose()?,
        valid_from: support::maybe_timestamp("valid_from", body.valid_from)?,
        valid_until: support::maybe_timestamp("valid_until", body.valid_until)?,
        ticket_type_ids: super::scope(body.ticket_type_ids)?,
    };
    support::ordered(
        "valid_until",
        new.valid_from,
        new.valid_until,
        "valid_until must be after valid_from",
    )?;

    let mut conn = state.conn().await?;
    managed_event(&mut conn, &user, event_id).await?;
    // Coupons are in no public view: nothing cached to invalidate.
    let created = written(coupons::create(&mut conn, &new).await.map_err(db_error)?)?;
    Ok((StatusCode::CREATED, Json(CouponView::from(&created))))
}
