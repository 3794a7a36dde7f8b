//! `/v1/events/{id}/coupons`: discount codes of an event.
//!
//! Whoever manages the event (its organizer, or an admin) lists, creates,
//! changes and deletes its coupons; another organizer gets 404. Anyone may ask
//! what a code would take off an order (`POST /v1/events/{id}/coupons/validate`).

pub mod create;
pub mod delete;
pub mod list;
pub mod update;
pub mod validate;

use boxoffice_models::coupons::{CouponKind, CouponWithScope, CouponWrite};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::routes::events::support;
use crate::routes::ticket_types::refusal;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list::list_coupons, create::create_coupon))
        .routes(routes!(update::update_coupon, delete::delete_coupon))
        .routes(routes!(validate::validate_coupon))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CouponKindView {
    /// `value` percent off the eligible tickets (1–100).
    Percent,
    /// `value` minor units off the order, once (never more than the eligible tickets).
    Fixed,
}

impl From<CouponKind> for CouponKindView {
    fn from(kind: CouponKind) -> Self {
        match kind {
            CouponKind::Percent => CouponKindView::Percent,
            CouponKind::Fixed => CouponKindView::Fixed,
        }
    }
}

impl From<CouponKindView> for CouponKind {
    fn from(kind: CouponKindView) -> Self {
        match kind {
            CouponKindView::Percent => CouponKind::Percent,
            CouponKindView::Fixed => CouponKind::Fixed,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CouponView {
    pub id: Uuid,
    pub event_id: Uuid,
    #[schema(example = "WELCOME10")]
    pub code: String,
    pub kind: CouponKindView,
    /// Percent (1–100) or minor units of `currency`.
    #[schema(example = 10)]
    pub value: i64,
    /// The event's currency, for fixed coupons.
    pub currency: Option<String>,
    /// `null`: unlimited.
    pub max_uses: Option<i32>,
    pub used: i32,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    /// The ticket types it applies to; empty: all of the event's.
    pub ticket_type_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Moves on every change an organizer makes (not on uses); send it back
    /// as `If-Match: "<version>"` to update only what you read.
    pub version: i32,
}

impl From<&CouponWithScope> for CouponView {
    fn from(scoped: &CouponWithScope) -> Self {
        let coupon = &scoped.coupon;
        CouponView {
            id: coupon.id,
            event_id: coupon.event_id,
            code: coupon.code.clone(),
            kind: coupon.kind.into(),
            value: coupon.value,
            currency: coupon.currency.clone(),
            max_uses: coupon.max_uses,
            used: coupon.used,
            valid_from: coupon.valid_from,
            valid_until: coupon.valid_until,
            ticket_type_ids: scoped.ticket_type_ids.clone(),
            created_at: coupon.created_at,
            updated_at: coupon.updated_at,
            version: coupon.version,
        }
    }
}

/// The coupon written, or the problem saying why not.
pub(crate) fn written(outcome: CouponWrite) -> AppResult<CouponWithScope> {
    match outcome {
        CouponWrite::Done(scoped) => Ok(scoped),
        CouponWrite::Refused(r) => Err(refusal(r, "coupon")),
        CouponWrite::UnknownTicketTypes(ids) => Err(AppError::validation(
            "ticket_type_ids",
            "these are not ticket types of this event",
        )
        .with("unknown", ids)),
        CouponWrite::EventHasNoCurrency => Err(AppError::validation(
            "kind",
            "a fixed coupon needs the event's currency: add a ticket type (or set the event's currency) first",
        )),
        CouponWrite::VersionMismatch { current } => {
            Err(crate::if_match::version_mismatch(current, "coupon"))
        }
        CouponWrite::MaxUsesBelowUsed { used } => Err(AppError::conflict(
            "max_uses_below_used",
            format!("the coupon was already used {used} times"),
        )
        .with("field", "max_uses")
        .with("used", used)),
    }
}

/// 3 to 40 letters, digits, `-` or `_`, starting with a letter or digit.
pub(crate) fn code(raw: &str) -> AppResult<String> {
    let value = raw.trim();
    let well_formed = (3..=40).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && value.as_bytes()[0].is_ascii_alphanumeric();
    if well_formed {
        Ok(value.to_owned())
    } else {
        Err(AppError::validation(
            "code",
            "code must be 3 to 40 letters, digits, '-' or '_', starting with a letter or digit",
        ))
    }
}

pub(crate) fn value_for(kind: CouponKind, value: i64) -> AppResult<i64> {
    match kind {
        CouponKind::Percent => support::in_range("value", value, 1, 100),
        CouponKind::Fixed => support::in_range("value", value, 1, support::MONEY_MAX),
    }
}

pub(crate) fn max_uses(value: i32) -> AppResult<i32> {
    support::in_range("max_uses", value, 1, i32::MAX)
}

/// At most 50 distinct ids.
pub(crate) fn scope(ids: Vec<Uuid>) -> AppResult<Vec<Uuid>> {
    if ids.len() > 50 {
        return Err(AppError::validation(
            "ticket_type_ids",
            "at most 50 ticket types",
        ));
    }
    Ok(ids)
}
