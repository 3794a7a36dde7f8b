//! `PATCH /v1/events/{id}`: change an event's fields, guarded by its version.

use axum::extract::State;
use axum::http::HeaderMap;
use boxoffice_models::events::{self, EventChanges, VersionedUpdate};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::support::{self, Organizer, db_error, managed_event, nullable};
use super::{Audience, EventView, event_view, version_headers};
use crate::cache;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::if_match::{IfMatch, version_mismatch};
use crate::state::AppState;

/// Only the fields present change; `null` clears a field that may be empty.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEventRequest {
    #[schema(max_length = 200)]
    pub title: Option<String>,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    #[schema(max_length = 50)]
    pub category: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>, nullable)]
    pub venue_id: Option<Option<Uuid>>,
    pub online: Option<bool>,
    /// Only while no ticket type or fixed coupon uses the current one (else 409 `currency_locked`).
    pub currency: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>, nullable)]
    pub sales_start_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>, nullable)]
    pub sales_end_at: Option<Option<DateTime<Utc>>>,
    #[schema(minimum = 1, maximum = 120)]
    pub hold_minutes: Option<i32>,
    #[schema(minimum = 1, maximum = 100)]
    pub max_tickets_per_order: Option<i32>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>, nullable, minimum = 1, maximum = 1000)]
    pub max_tickets_per_participant: Option<Option<i32>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>, nullable, minimum = 0, maximum = 8760)]
    pub refundable_until_hours_before: Option<Option<i32>>,
    /// Whether sold-out ticket types take a waitlist (entries already in it stay).
    pub waitlist_enabled: Option<bool>,
    /// How long new waitlist offers hold their tickets (offers already made keep theirs).
    #[schema(minimum = 5, maximum = 10080)]
    pub waitlist_offer_minutes: Option<i32>,
}

impl UpdateEventRequest {
    fn parse(self) -> AppResult<EventChanges> {
        let changes = EventChanges {
            title: self
                .title
                .as_deref()
                .map(super::create::title)
                .transpose()?,
            description: self
                .description
                .as_deref()
                .map(super::create::description)
                .transpose()?,
            category: self
                .category
                .as_deref()
                .map(|c| support::category("category", c))
                .transpose()?,
            venue_id: self.venue_id,
            online: self.online,
            currency: self
                .currency
                .as_deref()
                .map(|c| support::currency("currency", c))
                .transpose()?,
            starts_at: support::maybe_timestamp("starts_at", self.starts_at)?,
            ends_at: support::maybe_timestamp("ends_at", self.ends_at)?,
            sales_start_at: self
                .sales_start_at
                .map(|at| support::maybe_timestamp("sales_start_at", at))
                .transpose()?,
            sales_end_at: self
                .sales_end_at
                .map(|at| support::maybe_timestamp("sales_end_at", at))
                .transpose()?,
            hold_minutes: self
                .hold_minutes
                .map(|m| support::in_range("hold_minutes", m, 1, 120))
                .transpose()?,
            max_tickets_per_order: self
                .max_tickets_per_order
                .map(|m| support::in_range("max_tickets_per_order", m, 1, 100))
                .transpose()?,
            max_tickets_per_participant: self
                .max_tickets_per_participant
                .map(|m| {
                    m.map(|m| support::in_range("max_tickets_per_participant", m, 1, 1000))
                        .transpose()
                })
                .transpose()?,
            refundable_until_hours_before: self
                .refundable_until_hours_before
                .map(|h| {
                    h.map(|h| support::in_range("refundable_until_hours_before", h, 0, 8760))
                        .transpose()
                })
                .transpose()?,
            waitlist_enabled: self.waitlist_enabled,
            waitlist_offer_minutes: self
                .waitlist_offer_minutes
                .map(|m| support::in_range("waitlist_offer_minutes", m, 5, 10080))
                .transpose()?,
        };
        // Checks against stored values (e.g. only `ends_at` sent) are the table's CHECKs.
        support::ordered(
            "ends_at",
            changes.starts_at,
            changes.ends_at,
            "ends_at must be after starts_at",
        )?;
        support::ordered(
            "sales_end_at",
            changes.sales_start_at.flatten(),
            changes.sales_end_at.flatten(),
            "sales_end_at must be after sales_start_at",
        )?;
        Ok(changes)
    }
}

/// Changes an event. Send the version you read in `If-Match`; if the event
/// changed since, nothing is written and the answer is 412. Of two concurrent
/// changes from the same version exactly one succeeds.
#[utoipa::path(patch, path = "/events/{id}", tag = "events",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Event id"),
        ("If-Match" = String, Header, description = "The ETag you last read, e.g. `\"3\"` (the `version` field in quotes); a list matches if any tag does; `*` matches any version. Compared strongly: `W/` tags never match"),
    ),
    request_body = UpdateEventRequest,
    responses(
        (status = 200, description = "The updated event; `ETag` carries its new version", body = EventView),
        (status = 400, description = "`invalid_path`, `invalid_if_match`, `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`event_not_editable` (cancelled or completed), `currency_locked`", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`version_mismatch`, with `current_version`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (with `field`), `invalid_body`", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "`precondition_required`: no If-Match", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_event(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    if_match: IfMatch,
    Json(body): Json<UpdateEventRequest>,
) -> AppResult<(HeaderMap, Json<EventView>)> {
    let changes = body.parse()?;
    let mut conn = state.conn().await?;
    let current = managed_event(&mut conn, &user, id).await?;
    let expected = if_match.check(current.version, "event")?;
    let event = match events::update_versioned(&mut conn, id, expected.as_deref(), &changes)
        .await
        .map_err(db_error)?
    {
        VersionedUpdate::Updated(event) => event,
        VersionedUpdate::NotFound => return Err(AppError::not_found("event")),
        VersionedUpdate::VersionMismatch { current } => {
            return Err(version_mismatch(current, "event"));
        }
        VersionedUpdate::NotEditable(status) => return Err(not_editable(status)),
    };
    let view = event_view(&mut conn, &event, Audience::Manager).await?;
    drop(conn);
    cache::invalidate_event(&state, id).await;
    Ok((version_headers(event.version), Json(view)))
}

pub(crate) fn not_editable(status: events::EventStatus) -> AppError {
    AppError::conflict(
        "event_not_editable",
        format!("a {} event can't be changed", status.as_str()),
    )
    .with("event_status", status.as_str())
}
