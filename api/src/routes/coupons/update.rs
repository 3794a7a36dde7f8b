//! `PATCH /v1/events/{id}/coupons/{coupon_id}`.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use boxoffice_models::coupons::{self, CouponKind, CouponPatch};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{CouponKindView, CouponView, written};
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Path};
use crate::if_match::{IfMatch, etag};
use crate::routes::events::support::{self, Organizer, db_error, managed_event, nullable};
use crate::state::AppState;

/// Only the fields present change; `null` clears a field that may be empty.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCouponRequest {
    #[schema(min_length = 3, max_length = 40)]
    pub code: Option<String>,
    /// Changing the kind usually needs a new `value` too.
    pub kind: Option<CouponKindView>,
    pub value: Option<i64>,
    /// Never below `used` (409 `max_uses_below_used`); `null`: unlimited.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>, nullable)]
    pub max_uses: Option<Option<i32>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>, nullable)]
    pub valid_from: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>, nullable)]
    pub valid_until: Option<Option<DateTime<Utc>>>,
    /// Replaces the restriction; `[]`: all ticket types.
    pub ticket_type_ids: Option<Vec<Uuid>>,
}

/// Changes a coupon of an event you manage. With `If-Match`, only at the
/// version named.
#[utoipa::path(patch, path = "/events/{id}/coupons/{coupon_id}", tag = "coupons",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Event id"),
        ("coupon_id" = Uuid, Path, description = "Coupon id"),
        ("If-Match" = Option<String>, Header, description = "Optional: the ETag you last read, `\"<version>\"`; the change is made only at that version (412 `version_mismatch` otherwise). A list matches if any tag does; `*` matches any version; `W/` tags never match"),
    ),
    request_body = UpdateCouponRequest,
    responses(
        (status = 200, description = "The updated coupon; `ETag` carries its new version", body = CouponView),
        (status = 400, description = "`invalid_path`, `invalid_if_match`, `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`duplicate_coupon_code`, `max_uses_below_used`, `event_not_editable`", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`version_mismatch`, with `current_version`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, `invalid_body`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_coupon(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path((event_id, id)): Path<(Uuid, Uuid)>,
    if_match: Option<IfMatch>,
    Json(body): Json<UpdateCouponRequest>,
) -> AppResult<(HeaderMap, Json<CouponView>)> {
    let kind: Option<CouponKind> = body.kind.map(Into::into);
    let value = match (kind, body.value) {
        (_, None) => None,
        (Some(kind), Some(value)) => Some(super::value_for(kind, value)?),
        // Against the stored kind: the table's CHECK decides (422 on `value`).
        (None, Some(value)) => Some(support::in_range("value", value, 1, support::MONEY_MAX)?),
    };
    let patch = CouponPatch {
        code: body.code.as_deref().map(super::code).transpose()?,
        kind,
        value,
        max_uses: body
            .max_uses
            .map(|m| m.map(super::max_uses).transpose())
            .transpose()?,
        valid_from: body
            .valid_from
            .map(|at| support::maybe_timestamp("valid_from", at))
            .transpose()?,
        valid_until: body
            .valid_until
            .map(|at| support::maybe_timestamp("valid_until", at))
            .transpose()?,
        ticket_type_ids: body.ticket_type_ids.map(super::scope).transpose()?,
    };
    support::ordered(
        "valid_until",
        patch.valid_from.flatten(),
        patch.valid_until.flatten(),
        "valid_until must be after valid_from",
    )?;

    let mut conn = state.conn().await?;
    managed_event(&mut conn, &user, event_id).await?;
    let expected = if_match.and_then(|m| m.versions());
    let updated = written(
        coupons::update(&mut conn, event_id, id, &patch, expected.as_deref())
            .await
            .map_err(db_error)?,
    )?;
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag(updated.coupon.version));
    Ok((headers, Json(CouponView::from(&updated))))
}
