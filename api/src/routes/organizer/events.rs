//! `GET /v1/organizer/events`: your events with sales figures per ticket type.

use axum::extract::State;
use boxoffice_models::ticket_types::{self, TicketType};
use boxoffice_models::{events, refunds};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Query};
use crate::routes::events::support::Organizer;
use crate::routes::events::{EventStatusView, cursor};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrganizerEventsParams {
    pub status: Option<EventStatusView>,
    /// Admins only: one organizer's events (default for admins: everyone's).
    pub organizer_id: Option<Uuid>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Sales of one ticket type; amounts in minor units of the event's currency.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TicketTypeSales {
    pub id: Uuid,
    pub name: String,
    pub price_minor: i64,
    pub capacity: i32,
    pub sold: i32,
    /// In open checkouts.
    pub held: i32,
    pub available: i32,
    /// `sold × price_minor` at the current price (before coupons).
    pub gross_minor: i64,
    /// Tickets given back by a refund (no longer counted in `sold`).
    pub refunded: i64,
}

/// The sum over an event's ticket types.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SalesTotals {
    pub capacity: i64,
    pub sold: i64,
    pub held: i64,
    pub available: i64,
    pub gross_minor: i64,
    /// Tickets given back by a refund.
    pub refunded: i64,
    /// Money given back by refunds that succeeded (goodwill refunds included).
    pub refunded_minor: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrganizerEvent {
    pub id: Uuid,
    pub organizer_id: Uuid,
    pub title: String,
    pub status: EventStatusView,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub currency: Option<String>,
    pub version: i32,
    pub ticket_types: Vec<TicketTypeSales>,
    pub totals: SalesTotals,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrganizerEventPage {
    pub items: Vec<OrganizerEvent>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Your events (every event, for admins), soonest first, with capacity, sold,
/// held, available, gross and refunded per ticket type. Read from Postgres, never cached.
#[utoipa::path(get, path = "/organizer/events", tag = "organizer",
    security(("bearer" = [])),
    params(OrganizerEventsParams),
    responses(
        (status = 200, description = "One page of events with sales figures", body = OrganizerEventPage),
        (status = 400, description = "`invalid_query`, `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer, or `organizer_id` of someone else", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_organizer_events(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Query(params): Query<OrganizerEventsParams>,
) -> AppResult<Json<OrganizerEventPage>> {
    let organizer_id = match (user.is_admin(), params.organizer_id) {
        (true, requested) => requested,
        (false, Some(requested)) if requested != user.user_id => {
            return Err(AppError::forbidden(
                "only admins may list another organizer's events",
            ));
        }
        (false, _) => Some(user.user_id),
    };
    let limit = cursor::page_limit(params.limit)?;
    let after = match params.cursor.as_deref() {
        None => None,
        Some(raw) => {
            let parts = cursor::decode(raw, 2).ok_or_else(cursor::invalid_cursor)?;
            let starts_at = cursor::decode_time(&parts[0]).ok_or_else(cursor::invalid_cursor)?;
            let id: Uuid = parts[1].parse().map_err(|_| cursor::invalid_cursor())?;
            Some((starts_at, id))
        }
    };

    let mut conn = state.conn().await?;
    let mut rows = events::list_for_organizer(
        &mut conn,
        organizer_id,
        params.status.map(Into::into),
        after,
        i64::from(limit) + 1,
    )
    .await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last()
            .map(|e| cursor::encode(&[&cursor::encode_time(e.starts_at), &e.id.to_string()]))
    } else {
        None
    };
    let ids: Vec<Uuid> = rows.iter().map(|e| e.id).collect();
    let all_types = ticket_types::for_events(&mut conn, &ids).await?;
    let type_ids: Vec<Uuid> = all_types.iter().map(|t| t.id).collect();
    let refunded_tickets = refunds::refunded_tickets_by_type(&mut conn, &type_ids).await?;
    let refunded_money = refunds::refunded_minor_by_event(&mut conn, &ids).await?;
    let refunded_of = |type_id: Uuid| {
        refunded_tickets
            .iter()
            .find(|(id, _)| *id == type_id)
            .map_or(0, |(_, n)| *n)
    };

    let items = rows
        .iter()
        .map(|event| {
            let types: Vec<&TicketType> = all_types
                .iter()
                .filter(|t| t.event_id == event.id)
                .collect();
            let totals = types
                .iter()
                .fold(SalesTotals::default(), |sum, t| SalesTotals {
                    capacity: sum.capacity + i64::from(t.capacity),
                    sold: sum.sold + i64::from(t.sold),
                    held: sum.held + i64::from(t.held),
                    available: sum.available + i64::from(t.available()),
                    gross_minor: sum.gross_minor.saturating_add(t.gross_minor()),
                    refunded: sum.refunded + refunded_of(t.id),
                    refunded_minor: 0,
                });
            let totals = SalesTotals {
                refunded_minor: refunded_money
                    .iter()
                    .find(|(id, _)| *id == event.id)
                    .map_or(0, |(_, minor)| *minor),
                ..totals
            };
            OrganizerEvent {
                id: event.id,
                organizer_id: event.organizer_id,
                title: event.title.clone(),
                status: event.status.into(),
                starts_at: event.starts_at,
                ends_at: event.ends_at,
                currency: event.currency.clone(),
                version: event.version,
                ticket_types: types
                    .iter()
                    .map(|t| TicketTypeSales {
                        id: t.id,
                        name: t.name.clone(),
                        price_minor: t.price_minor,
                        capacity: t.capacity,
                        sold: t.sold,
                        held: t.held,
                        available: t.available(),
                        gross_minor: t.gross_minor(),
                        refunded: refunded_of(t.id),
                    })
                    .collect(),
                totals,
            }
        })
        .collect();
    Ok(Json(OrganizerEventPage { items, next_cursor }))
}
