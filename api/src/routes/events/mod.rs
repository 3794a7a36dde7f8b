//! `/v1/events`: the catalog's events.
//!
//! Public: the listing (`GET /v1/events`, full-text search, filters, keyset
//! pages) and an event's details (`GET /v1/events/{id}`), both cached briefly
//! in Redis ([`crate::cache`]). Drafts are visible only to whoever manages them.
//!
//! Organizers: create (a draft), change with `If-Match: <version>`, publish,
//! cancel, delete a draft. An organizer acts only on their own events, an admin
//! on all; anyone else gets 403, and another organizer's event is a 404.
//! Every write invalidates the cached views it affects after it commits.

pub mod cancel;
pub mod create;
pub mod cursor;
pub mod delete;
pub mod list;
pub mod publish;
pub mod show;
pub mod support;
pub mod update;

use axum::http::{HeaderMap, header};
use boxoffice_models::events::{Event, EventStatus};
use boxoffice_models::{ticket_types, venues};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::AppResult;
use crate::routes::ticket_types::TicketTypeView;
use crate::routes::venues::VenueView;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list::list_events, create::create_event))
        .routes(routes!(
            show::show_event,
            update::update_event,
            delete::delete_event
        ))
        .routes(routes!(publish::publish_event))
        .routes(routes!(cancel::cancel_event))
}

/// An event's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatusView {
    Draft,
    Published,
    Cancelled,
    Completed,
}

impl From<EventStatus> for EventStatusView {
    fn from(status: EventStatus) -> Self {
        match status {
            EventStatus::Draft => EventStatusView::Draft,
            EventStatus::Published => EventStatusView::Published,
            EventStatus::Cancelled => EventStatusView::Cancelled,
            EventStatus::Completed => EventStatusView::Completed,
        }
    }
}

impl From<EventStatusView> for EventStatus {
    fn from(status: EventStatusView) -> Self {
        match status {
            EventStatusView::Draft => EventStatus::Draft,
            EventStatusView::Published => EventStatus::Published,
            EventStatusView::Cancelled => EventStatus::Cancelled,
            EventStatusView::Completed => EventStatus::Completed,
        }
    }
}

/// An event with its venue and ticket types. Amounts are integer minor units
/// (cents) of `currency`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: Uuid,
    pub organizer_id: Uuid,
    pub status: EventStatusView,
    pub title: String,
    pub description: String,
    #[schema(example = "music")]
    pub category: String,
    /// ISO 4217; `null` on a draft until its first ticket type fixes it.
    #[schema(example = "EUR")]
    pub currency: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub online: bool,
    pub venue: Option<VenueView>,
    /// `null`: on sale from publication.
    pub sales_start_at: Option<DateTime<Utc>>,
    /// `null`: on sale until the event ends.
    pub sales_end_at: Option<DateTime<Utc>>,
    /// How long a checkout holds tickets before payment.
    pub hold_minutes: i32,
    pub max_tickets_per_order: i32,
    /// How many tickets one participant may have of the event (confirmed
    /// bookings and open checkouts together); `null`: no such limit.
    pub max_tickets_per_participant: Option<i32>,
    /// Refunds are possible until this many hours before the start; `null`: not refundable.
    pub refundable_until_hours_before: Option<i32>,
    /// Participants may join the waitlist of a ticket type that cannot sell them what they ask.
    pub waitlist_enabled: bool,
    /// How long a waitlist offer holds its tickets for the participant.
    pub waitlist_offer_minutes: i32,
    /// Send it back in `If-Match` to change the event.
    pub version: i32,
    pub published_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ticket_types: Vec<TicketTypeView>,
}

/// Whether ticket types show their sales figures (only to whoever manages the event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Public,
    Manager,
}

/// Loads the venue and ticket types of `event` and builds its view.
pub async fn event_view(
    conn: &mut AsyncPgConnection,
    event: &Event,
    audience: Audience,
) -> AppResult<EventView> {
    let venue = match event.venue_id {
        Some(id) => venues::find(conn, id).await?,
        None => None,
    };
    let ticket_types = ticket_types::for_event(conn, event.id).await?;
    Ok(EventView {
        id: event.id,
        organizer_id: event.organizer_id,
        status: event.status.into(),
        title: event.title.clone(),
        description: event.description.clone(),
        category: event.category.clone(),
        currency: event.currency.clone(),
        starts_at: event.starts_at,
        ends_at: event.ends_at,
        online: event.online,
        venue: venue.as_ref().map(VenueView::from),
        sales_start_at: event.sales_start_at,
        sales_end_at: event.sales_end_at,
        hold_minutes: event.hold_minutes,
        max_tickets_per_order: event.max_tickets_per_order,
        max_tickets_per_participant: event.max_tickets_per_participant,
        refundable_until_hours_before: event.refundable_until_hours_before,
        waitlist_enabled: event.waitlist_enabled,
        waitlist_offer_minutes: event.waitlist_offer_minutes,
        version: event.version,
        published_at: event.published_at,
        cancelled_at: event.cancelled_at,
        created_at: event.created_at,
        updated_at: event.updated_at,
        ticket_types: ticket_types
            .iter()
            .map(|t| TicketTypeView::new(t, audience))
            .collect(),
    })
}

/// `ETag: "<version>"` for responses to the event's manager.
pub fn version_headers(version: i32) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, crate::if_match::etag(version));
    headers
}
