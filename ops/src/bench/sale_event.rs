//! An event with its ticket types, written through the models in one go, as
//! the benchmarks and the chaos soak seed them: no HTTP, no organizer flow,
//! just the rows an organizer's calls would leave.

use anyhow::Context;
use boxoffice_models::DbPool;
use boxoffice_models::events::{self, NewEvent, PublishOutcome};
use boxoffice_models::ticket_types::{self, CreateOutcome, NewTicketType};
use boxoffice_models::venues::{self, NewVenue};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

pub(crate) struct EventSpec<'a> {
    pub title: &'a str,
    /// Which command made it, for the description.
    pub made_by: &'a str,
    pub starts_at: DateTime<Utc>,
    /// `(price in cents, capacity)` per ticket type.
    pub prices: &'a [(i64, i32)],
    pub hold_minutes: i32,
    pub max_tickets_per_order: i32,
    pub refundable_until_hours_before: Option<i32>,
    /// `None`: the columns' defaults.
    pub waitlist_enabled: Option<bool>,
    pub waitlist_offer_minutes: Option<i32>,
    /// `None`: the default offsets.
    pub reminder_minutes: Option<&'a [i32]>,
    /// On sale, or left a draft.
    pub publish: bool,
}

/// The event (in a venue of its own, in Berlin) and its ticket types' ids.
pub(crate) async fn create(
    pool: &DbPool,
    organizer_id: Uuid,
    spec: &EventSpec<'_>,
) -> anyhow::Result<(Uuid, Vec<Uuid>)> {
    let mut conn = pool.get().await?;
    let venue = venues::insert(
        &mut conn,
        &NewVenue {
            id: Uuid::now_v7(),
            created_by: organizer_id,
            name: "Bench Hall".into(),
            address: "1 Benchmark Street".into(),
            city: "Berlin".into(),
            country: "DE".into(),
            timezone: "Europe/Berlin".into(),
        },
    )
    .await?;
    let event = events::insert(
        &mut conn,
        &NewEvent {
            id: Uuid::now_v7(),
            organizer_id,
            venue_id: Some(venue.id),
            online: false,
            title: spec.title.into(),
            description: format!("Created by `{}`.", spec.made_by),
            category: "music".into(),
            currency: Some("EUR".into()),
            starts_at: spec.starts_at,
            ends_at: spec.starts_at + Duration::hours(3),
            sales_start_at: None,
            sales_end_at: None,
            hold_minutes: spec.hold_minutes,
            max_tickets_per_order: spec.max_tickets_per_order,
            max_tickets_per_participant: None,
            refundable_until_hours_before: spec.refundable_until_hours_before,
            waitlist_enabled: spec.waitlist_enabled,
            waitlist_offer_minutes: spec.waitlist_offer_minutes,
        },
    )
    .await?;
    if let Some(offsets) = spec.reminder_minutes {
        boxoffice_models::reminders::set_offsets(&mut conn, event.id, offsets).await?;
    }
    let mut ids = Vec::with_capacity(spec.prices.len());
    for (i, (price, capacity)) in spec.prices.iter().enumerate() {
        let new = NewTicketType {
            id: Uuid::now_v7(),
            event_id: event.id,
            name: if spec.prices.len() == 1 {
                "General".into()
            } else {
                format!("Tier {}", i + 1)
            },
            description: String::new(),
            price_minor: *price,
            currency: "EUR".into(),
            capacity: *capacity,
            max_per_order: None,
            sales_start_at: None,
            sales_end_at: None,
            sort_order: i32::try_from(i).context("too many ticket types")?,
        };
        match ticket_types::create(&mut conn, &new).await? {
            CreateOutcome::Created(t) => ids.push(t.id),
            other => anyhow::bail!("creating a ticket type of {:?}: {other:?}", spec.title),
        }
    }
    if spec.publish {
        match events::publish(&mut conn, event.id).await? {
            PublishOutcome::Published(_) => {}
            other => anyhow::bail!("publishing {:?}: {other:?}", spec.title),
        }
    }
    Ok((event.id, ids))
}
