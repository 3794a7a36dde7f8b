//! The demo catalog of `boxoffice up`: a venue, a published event about a month
//! ahead with two ticket types, and the coupon `WELCOME10`. Created once: a
//! second run finds the event (by its title, for this organizer) and does nothing.

use anyhow::Context;
use boxoffice_models::coupons::{self, CouponKind, CouponWrite, NewCoupon};
use boxoffice_models::events::{self, NewEvent, PublishOutcome};
use boxoffice_models::schema::events as events_table;
use boxoffice_models::ticket_types::{self, CreateOutcome, NewTicketType};
use boxoffice_models::venues::{self, NewVenue};
use chrono::{Duration, DurationRound, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

pub const DEMO_EVENT_TITLE: &str = "Boxoffice Demo Night";
pub const DEMO_COUPON: &str = "WELCOME10";

pub async fn seed_demo_catalog(
    conn: &mut AsyncPgConnection,
    organizer_id: Uuid,
) -> anyhow::Result<()> {
    conn.transaction::<_, anyhow::Error, _>(async |c| {
        // Two `up`s at once must not both create it.
        diesel::sql_query("SELECT pg_advisory_xact_lock(7414172)")
            .execute(c)
            .await?;
        let existing: i64 = events_table::table
            .filter(events_table::organizer_id.eq(organizer_id))
            .filter(events_table::title.eq(DEMO_EVENT_TITLE))
            .count()
            .get_result(c)
            .await?;
        if existing > 0 {
            return Ok(());
        }
        create(c, organizer_id).await
    })
    .await
}

async fn create(conn: &mut AsyncPgConnection, organizer_id: Uuid) -> anyhow::Result<()> {
    let venue = venues::insert(
        conn,
        &NewVenue {
            id: Uuid::now_v7(),
            created_by: organizer_id,
            name: "Tempodrom".into(),
            address: "Möckernstraße 10, 10963 Berlin".into(),
            city: "Berlin".into(),
            country: "DE".into(),
            timezone: "Europe/Berlin".into(),
        },
    )
    .await
    .context("creating the demo venue")?;

    let starts_at = (Utc::now() + Duration::days(30)).duration_trunc(Duration::hours(1))?;
    let event = events::insert(
        conn,
        &NewEvent {
            id: Uuid::now_v7(),
            organizer_id,
            venue_id: Some(venue.id),
            online: false,
            title: DEMO_EVENT_TITLE.into(),
            description: "A night of live jazz and big band swing to try Boxoffice with: \
                          browse it, check out, pay in the sandbox, get your tickets."
                .into(),
            category: "music".into(),
            currency: Some("EUR".into()),
            starts_at,
            ends_at: starts_at + Duration::hours(4),
            sales_start_at: None,
            sales_end_at: None,
            hold_minutes: 15,
            max_tickets_per_order: 10,
            max_tickets_per_participant: None,
            refundable_until_hours_before: Some(48),
            waitlist_enabled: None,
            waitlist_offer_minutes: None,
        },
    )
    .await
    .context("creating the demo event")?;

    for (name, price_minor, capacity, sort_order) in
        [("General", 4500, 200, 0), ("VIP", 12000, 20, 1)]
    {
        let new = NewTicketType {
            id: Uuid::now_v7(),
            event_id: event.id,
            name: name.into(),
            description: String::new(),
            price_minor,
            currency: "EUR".into(),
            capacity,
            max_per_order: None,
            sales_start_at: None,
            sales_end_at: None,
            sort_order,
        };
        match ticket_types::create(conn, &new).await? {
            CreateOutcome::Created(_) => {}
            other => anyhow::bail!("creating the demo ticket type {name}: {other:?}"),
        }
    }

    let coupon = NewCoupon {
        id: Uuid::now_v7(),
        event_id: event.id,
        code: DEMO_COUPON.into(),
        kind: CouponKind::Percent,
        value: 10,
        max_uses: Some(100),
        valid_from: None,
        valid_until: None,
        ticket_type_ids: Vec::new(),
    };
    match coupons::create(conn, &coupon).await? {
        CouponWrite::Done(_) => {}
        other => anyhow::bail!("creating the demo coupon: {other:?}"),
    }

    match events::publish(conn, event.id).await? {
        PublishOutcome::Published(_) => Ok(()),
        other => anyhow::bail!("publishing the demo event: {other:?}"),
    }
}
