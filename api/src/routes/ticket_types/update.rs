//! `PATCH /v1/events/{id}/ticket-types/{ticket_type_id}`.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use boxoffice_models::ticket_types::{self, TicketTypeChanges, UpdateOutcome};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{TicketTypeView, refusal};
use crate::cache;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::if_match::{IfMatch, etag, version_mismatch};
use crate::routes::events::Audience;
use crate::routes::events::support::{self, Organizer, db_error, managed_event, nullable};
use crate::state::AppState;

/// Only the fields present change; `null` clears a field that may be empty.
/// The currency is the event's and can't change here.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTicketTypeRequest {
    #[schema(max_length = 100)]
    pub name: Option<String>,
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    #[schema(minimum = 0)]
    pub price_minor: Option<i64>,
    /// Never below `sold + held` (409 `capacity_below_committed`).
    #[schema(minimum = 0, maximum = 1000000)]
    pub capacity: Option<i32>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>, nullable)]
    pub max_per_order: Option<Option<i32>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>, nullable)]
    pub sales_start_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>, nullable)]
    pub sales_end_at: Option<Option<DateTime<Utc>>>,
    pub sort_order: Option<i32>,
}

/// Changes a ticket type. Lowering the capacity below what is sold and held is
/// refused with 409 `capacity_below_committed` and both numbers; the check and
/// the write are one statement, so a concurrent checkout can't slip between them.
/// With `If-Match`, the change is made only at the version named.
#[utoipa::path(patch, path = "/events/{id}/ticket-types/{ticket_type_id}", tag = "ticket-types",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Event id"),
        ("ticket_type_id" = Uuid, Path, description = "Ticket type id"),
        ("If-Match" = Option<String>, Header, description = "Optional: the ETag you last read, `\"<version>\"`; the change is made only at that version (412 `version_mismatch` otherwise). A list matches if any tag does; `*` matches any version; `W/` tags never match"),
    ),
    request_body = UpdateTicketTypeRequest,
    responses(
        (status = 200, description = "The updated ticket type; `ETag` carries its new version", body = TicketTypeView),
        (status = 400, description = "`invalid_path`, `invalid_if_match`, `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours, or no such ticket type", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`capacity_below_committed` (with `sold`, `held`, `minimum`), `event_not_editable`, `duplicate_ticket_type_name`", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`version_mismatch`, with `current_version`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, `invalid_body`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_ticket_type(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path((event_id, id)): Path<(Uuid, Uuid)>,
    if_match: Option<IfMatch>,
    Json(body): Json<UpdateTicketTypeRequest>,
) -> AppResult<(HeaderMap, Json<TicketTypeView>)> {
    let changes = TicketTypeChanges {
        name: body.name.as_deref().map(super::name).transpose()?,
        description: body
            .description
            .as_deref()
            .map(super::description)
            .transpose()?,
        price_minor: body.price_minor.map(super::price).transpose()?,
        max_per_order: body
            .max_per_order
            .map(|m| m.map(super::max_per_order).transpose())
            .transpose()?,
        sales_start_at: body
            .sales_start_at
            .map(|at| support::maybe_timestamp("sales_start_at", at))
            .transpose()?,
        sales_end_at: body
            .sales_end_at
            .map(|at| support::maybe_timestamp("sales_end_at", at))
            .transpose()?,
        sort_order: body.sort_order.map(super::sort_order).transpose()?,
    };
    support::ordered(
        "sales_end_at",
        changes.sales_start_at.flatten(),
        changes.sales_end_at.flatten(),
        "sales_end_at must be after sales_start_at",
    )?;
    let capacity = body.capacity.map(super::capacity).transpose()?;

    let mut conn = state.conn().await?;
    managed_event(&mut conn, &user, event_id).await?;
    let expected = if_match.and_then(|m| m.versions());
    let updated = match ticket_types::update(
        &mut conn,
        event_id,
        id,
        &changes,
        capacity,
        expected.as_deref(),
    )
    .await
    .map_err(db_error)?
    {
        UpdateOutcome::Updated(updated) => updated,
        UpdateOutcome::Refused(r) => return Err(refusal(r, "ticket type")),
        UpdateOutcome::VersionMismatch { current } => {
            return Err(version_mismatch(current, "ticket type"));
        }
        UpdateOutcome::CapacityBelowCommitted { sold, held } => {
            return Err(AppError::conflict(
                "capacity_below_committed",
                format!(
                    "capacity can't drop below {} ({sold} sold, {held} held)",
                    sold + held
                ),
            )
            .with("field", "capacity")
            .with("sold", sold)
            .with("held", held)
            .with("minimum", sold + held));
        }
    };
    drop(conn);
    cache::invalidate_event(&state, event_id).await;
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag(updated.version));
    Ok((
        headers,
        Json(TicketTypeView::new(&updated, Audience::Manager)),
    ))
}
