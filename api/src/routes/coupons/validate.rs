//! `POST /v1/events/{id}/coupons/validate`: what a code would take off an order.

use std::collections::HashMap;

use axum::extract::State;
use boxoffice_models::coupons::{self, CouponRejection, PricedLine};
use boxoffice_models::events::{self, EventStatus};
use boxoffice_models::ticket_types;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::CouponKindView;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::routes::events::support::{MaybeAuthUser, can_manage};
use crate::state::AppState;

const ITEMS_MAX: usize = 50;
const QUANTITY_MAX: i64 = 100;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateCouponRequest {
    /// Case-insensitive.
    #[schema(example = "WELCOME10", max_length = 40)]
    pub code: String,
    /// The prospective order: 1 to 50 lines.
    pub items: Vec<OrderItem>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    pub ticket_type_id: Uuid,
    #[schema(minimum = 1, maximum = 100)]
    pub quantity: i64,
}

/// Why a code gives no discount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CouponInvalidReason {
    /// No coupon of this event has that code.
    NotFound,
    NotYetValid,
    Expired,
    UsedUp,
    /// The coupon is restricted to ticket types the order does not contain.
    NotApplicable,
}

impl From<CouponRejection> for CouponInvalidReason {
    fn from(rejection: CouponRejection) -> Self {
        match rejection {
            CouponRejection::NotYetValid => CouponInvalidReason::NotYetValid,
            CouponRejection::Expired => CouponInvalidReason::Expired,
            CouponRejection::UsedUp => CouponInvalidReason::UsedUp,
            CouponRejection::NotApplicable => CouponInvalidReason::NotApplicable,
        }
    }
}

/// The discount, or why there is none. Amounts are minor units of `currency`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CouponValidation {
    pub valid: bool,
    /// Set when `valid` is false.
    pub reason: Option<CouponInvalidReason>,
    /// The code as the organizer wrote it.
    pub code: Option<String>,
    pub kind: Option<CouponKindView>,
    pub value: Option<i64>,
    pub currency: Option<String>,
    /// Every line, before the discount.
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub total_minor: i64,
    /// The order's ticket types the discount applies to.
    pub applies_to: Vec<Uuid>,
}

/// Prices the order with the code: the discount it would give, or the reason
/// it gives none (`not_found`, `not_yet_valid`, `expired`, `used_up`,
/// `not_applicable`). Nothing is reserved: the checkout applies the coupon for real.
#[utoipa::path(post, path = "/events/{id}/coupons/validate", tag = "coupons",
    security((), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id")),
    request_body = ValidateCouponRequest,
    responses(
        (status = 200, description = "The discount, or `valid: false` with the reason", body = CouponValidation),
        (status = 400, description = "`invalid_path`, `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such published event", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (e.g. an item is not a ticket type of the event), `invalid_body`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn validate_coupon(
    State(state): State<AppState>,
    MaybeAuthUser(user): MaybeAuthUser,
    Path(event_id): Path<Uuid>,
    Json(body): Json<ValidateCouponRequest>,
) -> AppResult<Json<CouponValidation>> {
    let code = body.code.trim();
    if code.is_empty() || code.chars().count() > 40 || code.chars().any(char::is_control) {
        return Err(AppError::validation(
            "code",
            "code must be 1 to 40 printable characters",
        ));
    }
    if body.items.is_empty() || body.items.len() > ITEMS_MAX {
        return Err(AppError::validation(
            "items",
            format!("items must have 1 to {ITEMS_MAX} lines"),
        ));
    }
    if let Some(bad) = body
        .items
        .iter()
        .find(|i| !(1..=QUANTITY_MAX).contains(&i.quantity))
    {
        return Err(AppError::validation(
            "items",
            format!("quantity must be between 1 and {QUANTITY_MAX}"),
        )
        .with("ticket_type_id", bad.ticket_type_id));
    }

    let mut conn = state.conn().await?;
    let event = events::find(&mut conn, event_id)
        .await?
        .filter(|e| {
            e.status == EventStatus::Published || user.as_ref().is_some_and(|u| can_manage(u, e))
        })
        .ok_or_else(|| AppError::not_found("event"))?;
    let prices: HashMap<Uuid, i64> = ticket_types::for_event(&mut conn, event.id)
        .await?
        .into_iter()
        .map(|t| (t.id, t.price_minor))
        .collect();
    let mut lines = Vec::with_capacity(body.items.len());
    for item in &body.items {
        let Some(price) = prices.get(&item.ticket_type_id) else {
            return Err(
                AppError::validation("items", "not a ticket type of this event")
                    .with("ticket_type_id", item.ticket_type_id),
            );
        };
        lines.push(PricedLine {
            ticket_type_id: item.ticket_type_id,
            unit_price_minor: *price,
            quantity: item.quantity,
        });
    }
    let subtotal_minor: i64 = lines.iter().map(|l| l.unit_price_minor * l.quantity).sum();
    let no_discount = |reason: CouponInvalidReason| CouponValidation {
        valid: false,
        reason: Some(reason),
        code: None,
        kind: None,
        value: None,
        currency: event.currency.clone(),
        subtotal_minor,
        discount_minor: 0,
        total_minor: subtotal_minor,
        applies_to: Vec::new(),
    };

    let Some(scoped) = coupons::find_by_code(&mut conn, event.id, code).await? else {
        return Ok(Json(no_discount(CouponInvalidReason::NotFound)));
    };
    let coupon = &scoped.coupon;
    let validation = match coupons::evaluate(&scoped, &lines, Utc::now()) {
        Ok(discount) => CouponValidation {
            valid: true,
            reason: None,
            code: Some(coupon.code.clone()),
            kind: Some(coupon.kind.into()),
            value: Some(coupon.value),
            currency: event.currency.clone(),
            subtotal_minor: discount.subtotal_minor,
            discount_minor: discount.discount_minor,
            total_minor: discount.total_minor,
            applies_to: discount.applies_to,
        },
        Err(rejection) => CouponValidation {
            code: Some(coupon.code.clone()),
            kind: Some(coupon.kind.into()),
            value: Some(coupon.value),
            ..no_discount(rejection.into())
        },
    };
    Ok(Json(validation))
}
