//! `POST /v1/events`: create a draft event.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use boxoffice_models::events::{self, NewEvent};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::support::{self, Organizer, db_error};
use super::{Audience, EventView, event_view, version_headers};
use crate::error::{AppResult, Problem};
use crate::extract::Json;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEventRequest {
    #[schema(example = "Jazz at the Tempodrom", max_length = 200)]
    pub title: String,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    /// A slug: lower-case letters, digits, dashes.
    #[schema(example = "music", max_length = 50)]
    pub category: String,
    /// Where it takes place; publishing needs a venue or `online: true`.
    pub venue_id: Option<Uuid>,
    #[serde(default)]
    pub online: bool,
    /// ISO 4217. Optional: the first ticket type fixes it otherwise.
    #[schema(example = "EUR")]
    pub currency: Option<String>,
    pub starts_at: DateTime<Utc>,
    /// After `starts_at`.
    pub ends_at: DateTime<Utc>,
    /// Default: on sale from publication.
    pub sales_start_at: Option<DateTime<Utc>>,
    /// Default: on sale until the event ends.
    pub sales_end_at: Option<DateTime<Utc>>,
    /// 1 to 120, default 15.
    #[schema(minimum = 1, maximum = 120)]
    pub hold_minutes: Option<i32>,
    /// 1 to 100, default 10.
    #[schema(minimum = 1, maximum = 100)]
    pub max_tickets_per_order: Option<i32>,
    /// 1 to 1000: how many tickets one participant may have of the event, over
    /// confirmed bookings and open checkouts; absent or `null`: no such limit.
    #[schema(minimum = 1, maximum = 1000)]
    pub max_tickets_per_participant: Option<i32>,
    /// 0 to 8760; absent or `null`: not refundable.
    #[schema(minimum = 0, maximum = 8760)]
    pub refundable_until_hours_before: Option<i32>,
    /// Default true: a sold-out ticket type takes a waitlist.
    pub waitlist_enabled: Option<bool>,
    /// 5 to 10080, default 720: how long a waitlist offer holds its tickets.
    #[schema(minimum = 5, maximum = 10080)]
    pub waitlist_offer_minutes: Option<i32>,
}

/// Creates an event as a draft, owned by the caller.
#[utoipa::path(post, path = "/events", tag = "events",
    security(("bearer" = [])),
    request_body = CreateEventRequest,
    responses(
        (status = 201, description = "The new draft; `ETag` carries its version", body = EventView),
        (status = 400, description = "`malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (with `field`) or `invalid_body`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_event(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Json(body): Json<CreateEventRequest>,
) -> AppResult<(StatusCode, axum::http::HeaderMap, Json<EventView>)> {
    let new = NewEvent {
        id: Uuid::now_v7(),
        organizer_id: user.user_id,
        venue_id: body.venue_id,
        online: body.online,
        title: title(&body.title)?,
        description: description(body.description.as_deref().unwrap_or(""))?,
        category: support::category("category", &body.category)?,
        currency: body
            .currency
            .as_deref()
            .map(|c| support::currency("currency", c))
            .transpose()?,
        starts_at: support::timestamp("starts_at", body.starts_at)?,
        ends_at: support::timestamp("ends_at", body.ends_at)?,
        sales_start_at: support::maybe_timestamp("sales_start_at", body.sales_start_at)?,
        sales_end_at: support::maybe_timestamp("sales_end_at", body.sales_end_at)?,
        hold_minutes: support::in_range("hold_minutes", body.hold_minutes.unwrap_or(15), 1, 120)?,
        max_tickets_per_order: support::in_range(
            "max_tickets_per_order",
            body.max_tickets_per_order.unwrap_or(10),
            1,
            100,
        )?,
        max_tickets_per_participant: body
            .max_tickets_per_participant
            .map(|m| support::in_range("max_tickets_per_participant", m, 1, 1000))
            .transpose()?,
        refundable_until_hours_before: body
            .refundable_until_hours_before
            .map(|h| support::in_range("refundable_until_hours_before", h, 0, 8760))
            .transpose()?,
        waitlist_enabled: body.waitlist_enabled,
        waitlist_offer_minutes: body
            .waitlist_offer_minutes
            .map(|m| support::in_range("waitlist_offer_minutes", m, 5, 10080))
            .transpose()?,
    };
    support::ordered(
        "ends_at",
        Some(new.starts_at),
        Some(new.ends_at),
        "ends_at must be after starts_at",
    )?;
    support::ordered(
        "sales_end_at",
        new.sales_start_at,
        new.sales_end_at,
        "sales_end_at must be after sales_start_at",
    )?;
    support::ordered(
        "sales_end_at",
        new.sales_end_at,
        Some(new.ends_at + chrono::Duration::microseconds(1)),
        "sales must end by the end of the event",
    )?;

    let mut conn = state.conn().await?;
    let event = events::insert(&mut conn, &new).await.map_err(db_error)?;
    // A draft is in no public (cached) view: nothing to invalidate.
    let view = event_view(&mut conn, &event, Audience::Manager).await?;

    let mut headers = version_headers(event.version);
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/events/{}", event.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, Json(view)))
}

pub(crate) fn title(raw: &str) -> AppResult<String> {
    support::line("title", raw, 200)
}

pub(crate) fn description(raw: &str) -> AppResult<String> {
    support::text("description", raw, 10_000)
}
