//! `/v1/events/{id}/ticket-types`: what an event sells and how many.
//!
//! Only whoever manages the event (its organizer, or an admin) may add, change
//! or delete its ticket types; another organizer gets 404. A ticket type with
//! sales or holds can't be deleted, and its capacity can't drop below
//! `sold + held` (409 with both numbers). Prices are integer minor units in the
//! event's one currency.

pub mod create;
pub mod delete;
pub mod update;

use boxoffice_models::ticket_types::{TicketType, WriteRefusal};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::routes::events::Audience;
use crate::routes::events::support;
use crate::routes::events::update::not_editable;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create::create_ticket_type))
        .routes(routes!(
            update::update_ticket_type,
            delete::delete_ticket_type
        ))
}

/// A ticket type. `available` = capacity − sold − held.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TicketTypeView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub name: String,
    pub description: String,
    /// Minor units of `currency` (4500 = 45.00 EUR).
    #[schema(example = 4500)]
    pub price_minor: i64,
    #[schema(example = "EUR")]
    pub currency: String,
    pub capacity: i32,
    pub available: i32,
    /// Only for whoever manages the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sold: Option<i32>,
    /// Only for whoever manages the event: tickets in open checkouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<i32>,
    /// `null`: the event's `max_tickets_per_order` applies.
    pub max_per_order: Option<i32>,
    /// `null`: the event's sales window applies.
    pub sales_start_at: Option<DateTime<Utc>>,
    pub sales_end_at: Option<DateTime<Utc>>,
    pub sort_order: i32,
    /// Moves on every change an organizer makes; send it back as
    /// `If-Match: "<version>"` to update only what you read.
    pub version: i32,
}

impl TicketTypeView {
    pub fn new(ticket_type: &TicketType, audience: Audience) -> Self {
        let manager = audience == Audience::Manager;
        TicketTypeView {
            id: ticket_type.id,
            event_id: ticket_type.event_id,
            name: ticket_type.name.clone(),
            description: ticket_type.description.clone(),
            price_minor: ticket_type.price_minor,
            currency: ticket_type.currency.clone(),
            capacity: ticket_type.capacity,
            available: ticket_type.available(),
            sold: manager.then_some(ticket_type.sold),
            held: manager.then_some(ticket_type.held),
            max_per_order: ticket_type.max_per_order,
            version: ticket_type.version,
            sales_start_at: ticket_type.sales_start_at,
            sales_end_at: ticket_type.sales_end_at,
            sort_order: ticket_type.sort_order,
        }
    }
}

/// The problem for a refused catalog write.
pub(crate) fn refusal(refusal: WriteRefusal, what: &str) -> AppError {
    match refusal {
        WriteRefusal::EventNotFound => AppError::not_found("event"),
        WriteRefusal::EventNotEditable(status) => not_editable(status),
        WriteRefusal::NotFound => AppError::not_found(what),
    }
}

pub(crate) fn name(raw: &str) -> AppResult<String> {
    support::line("name", raw, 100)
}

pub(crate) fn description(raw: &str) -> AppResult<String> {
    support::text("description", raw, 2000)
}

pub(crate) fn price(value: i64) -> AppResult<i64> {
    support::in_range("price_minor", value, 0, support::MONEY_MAX)
}

pub(crate) fn capacity(value: i32) -> AppResult<i32> {
    support::in_range("capacity", value, 0, 1_000_000)
}

pub(crate) fn max_per_order(value: i32) -> AppResult<i32> {
    support::in_range("max_per_order", value, 1, 100)
}

pub(crate) fn sort_order(value: i32) -> AppResult<i32> {
    support::in_range("sort_order", value, -1_000_000, 1_000_000)
}
