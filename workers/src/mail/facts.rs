//! What an email says about an event and its tickets, read at sending time:
//! the event as it is now (a moved event's reminder shows the new time), its
//! venue, and a booking's tickets.

use boxoffice_models::schema::{events, ticket_types, tickets, venues};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// An event as an email shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFacts {
    pub id: Uuid,
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The venue's zone; UTC for an online event (it has no venue).
    pub zone: Tz,
    /// `None` for an online event.
    pub venue: Option<VenueFacts>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueFacts {
    pub name: String,
    pub address: String,
    pub city: String,
    pub country: String,
}

impl VenueFacts {
    /// `address, city, country`, the line a map or a calendar can find.
    pub fn full_address(&self) -> String {
        [&self.address, &self.city, &self.country]
            .into_iter()
            .filter(|part| !part.trim().is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One ticket of a booking, with the payload its QR code carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFacts {
    pub id: Uuid,
    pub number: String,
    pub type_name: String,
    pub qr_payload: String,
}

type EventRow = (
    Uuid,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<(String, String, String, String, String)>,
);

type TicketRow = (Uuid, String, String, String);

/// The columns of an [`EventRow`], the event's and its venue's (`NULL` for an
/// online event).
macro_rules! event_columns {
    () => {
        (
            events::id,
            events::title,
            events::starts_at,
            events::ends_at,
            (
                venues::name,
                venues::address,
                venues::city,
                venues::country,
                venues::timezone,
            )
                .nullable(),
        )
    };
}

/// The event `id` and its venue; `None` when there is no such event.
pub async fn event(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<EventFacts>> {
    let row: Option<EventRow> = events::table
        .left_join(venues::table)
        .filter(events::id.eq(id))
        .select(event_columns!())
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(event_facts))
}

/// The event `id` with its venue, and the tickets of `booking_id` a holder
/// can still use (`valid`: not refunded or void) in issue order, in one
/// read; `None` when there is no such event.
pub async fn event_and_tickets(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    booking_id: Uuid,
) -> QueryResult<Option<(EventFacts, Vec<TicketFacts>)>> {
    // One row per ticket, each with the event; one row with no ticket when
    // the booking has none.
    let rows: Vec<(EventRow, Option<TicketRow>)> = events::table
        .left_join(venues::table)
        .left_join(
            tickets::table.on(tickets::booking_id
                .eq(booking_id)
                .and(tickets::status.eq("valid"))),
        )
        .left_join(ticket_types::table.on(ticket_types::id.eq(tickets::ticket_type_id)))
        .filter(events::id.eq(id))
        .order((tickets::created_at, tickets::id))
        .select((
            event_columns!(),
            (
                tickets::id,
                tickets::number,
                ticket_types::name,
                tickets::qr_payload,
            )
                .nullable(),
        ))
        .load(conn)
        .await?;
    let mut rows = rows.into_iter();
    let Some((event, first)) = rows.next() else {
        return Ok(None);
    };
    let tickets = first
        .into_iter()
        .chain(rows.filter_map(|(_, ticket)| ticket))
        .map(|(id, number, type_name, qr_payload)| TicketFacts {
            id,
            number,
            type_name,
            qr_payload,
        })
        .collect();
    Ok(Some((event_facts(event), tickets)))
}

fn event_facts((id, title, starts_at, ends_at, venue): EventRow) -> EventFacts {
    let zone = venue
        .as_ref()
        // Venues' zones are checked when written; an unknown one (a zone
        // database older than the API's) still gives a correct UTC time.
        .and_then(|v| v.4.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC);
    EventFacts {
        id,
        title,
        starts_at,
        ends_at,
        zone,
        venue: venue.map(|(name, address, city, country, _)| VenueFacts {
            name,
            address,
            city,
            country,
        }),
    }
}
