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

/// The event `id` and its venue; `None` when there is no such event.
pub async fn event(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<EventFacts>> {
    let row: Option<EventRow> = events::table
        .left_join(venues::table)
        .filter(events::id.eq(id))
        .select((
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
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(|(id, title, starts_at, ends_at, venue)| {
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
    }))
}

/// The tickets of `booking_id` a holder can still use (`valid`: not refunded
/// or void), in issue order.
pub async fn tickets(
    conn: &mut AsyncPgConnection,
    booking_id: Uuid,
) -> QueryResult<Vec<TicketFacts>> {
    let rows: Vec<(Uuid, String, String, String)> = tickets::table
        .inner_join(ticket_types::table.on(ticket_types::id.eq(tickets::ticket_type_id)))
        .filter(tickets::booking_id.eq(booking_id))
        .filter(tickets::status.eq("valid"))
        .order((tickets::created_at, tickets::id))
        .select((
            tickets::id,
            tickets::number,
            ticket_types::name,
            tickets::qr_payload,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, number, type_name, qr_payload)| TicketFacts {
            id,
            number,
            type_name,
            qr_payload,
        })
        .collect())
}
