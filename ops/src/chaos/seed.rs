//! The world the soak plays in, written before the load starts: an organizer,
//! the buyers (signed in as a login signs them in), and the events.
//!
//! - `regular`: three events on sale, two ticket types each, a coupon each;
//!   each starts an hour after a moment inside the soak, so its one-hour
//!   reminder falls due while the soak runs.
//! - `scarce`: four seats with a waitlist (offers open for five minutes,
//!   the shortest allowed), so refunds and expired holds turn into offers.
//! - `doomed`: sold during the soak, then cancelled by the organizer.
//! - `probe`: what the fault injector buys through after each fault to time
//!   the recovery; big, so it never sells out.
//!
//! Every event holds seats for one minute, so an abandoned checkout ends
//! within the soak's drain.

use anyhow::Context;
use boxoffice_api::config::JwtConfig;
use boxoffice_models::DbPool;
use boxoffice_models::users::{self, NewUser, Role};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use super::client::Api;
use crate::bench::sale_event::{EventSpec, create};
use crate::bench::seed::sign_in;

#[derive(Debug, Clone)]
pub struct SaleEvent {
    pub id: Uuid,
    pub ticket_types: Vec<Uuid>,
    /// A 20 % coupon, where the event has one.
    pub coupon: Option<String>,
}

pub struct World {
    /// `Bearer …` of the organizer of every event.
    pub organizer: String,
    pub buyers: Vec<String>,
    /// Fresh buyers for the recovery probes: a buyer has one open checkout
    /// per event, and a probe may be left open by a fault.
    pub probe_buyers: Vec<String>,
    pub regular: Vec<SaleEvent>,
    pub scarce: SaleEvent,
    pub doomed: Vec<SaleEvent>,
    pub probe: SaleEvent,
}

/// Where each regular event's reminder falls due, as shares of the soak.
const REMINDERS_DUE_AT: [f64; 3] = [0.3, 0.55, 0.8];
pub const SCARCE_SEATS: i32 = 4;

pub async fn seed(
    pool: &DbPool,
    jwt: &JwtConfig,
    api: &Api,
    buyers: usize,
    probes: usize,
    soak: std::time::Duration,
) -> anyhow::Result<World> {
    let tag = Uuid::new_v4().simple().to_string()[..8].to_owned();
    // Nobody signs in with it: one hash shared by every soak user.
    let hash =
        boxoffice_api::auth::password::hash_password(&crate::secrets::random_token(24)).await?;
    let mut conn = pool.get().await?;
    let mut user = async |name: String, role: Role| -> anyhow::Result<(Uuid, String)> {
        let new = NewUser::new(
            format!("{name}-{tag}@boxoffice.test"),
            name.clone(),
            hash.clone(),
            &[role],
        );
        let user = users::insert(&mut conn, &new)
            .await?
            .with_context(|| format!("{name}'s email is taken"))?;
        let signed_in = sign_in(&mut conn, jwt, &user).await?;
        Ok((user.id, signed_in.authorization))
    };
    let (organizer_id, organizer) = user("chaos-organizer".into(), Role::Organizer).await?;
    let mut buyer_tokens = Vec::with_capacity(buyers);
    for i in 0..buyers {
        buyer_tokens.push(user(format!("chaos-buyer-{i}"), Role::Participant).await?.1);
    }
    let mut probe_buyers = Vec::with_capacity(probes);
    for i in 0..probes {
        probe_buyers.push(user(format!("chaos-probe-{i}"), Role::Participant).await?.1);
    }

    let soon = |share: f64| Utc::now() + Duration::minutes(60) + soak.mul_f64(share);
    let later = Utc::now() + Duration::days(30);
    let event = async |title: String, starts_at, prices: &[(i64, i32)], waitlist| {
        event(pool, organizer_id, &title, starts_at, prices, waitlist).await
    };
    let mut regular = Vec::new();
    for (i, due) in REMINDERS_DUE_AT.iter().enumerate() {
        let prices = [(2500, 150), (4000, 150)];
        regular.push(event(format!("Chaos concert {i}"), soon(*due), &prices, false).await?);
    }
    let scarce = event(
        "Chaos club night".into(),
        later,
        &[(3000, SCARCE_SEATS)],
        true,
    )
    .await?;
    let doomed_count = (soak.as_secs() / 120).max(1) as usize;
    let mut doomed = Vec::new();
    for i in 0..doomed_count {
        doomed.push(event(format!("Chaos festival {i}"), later, &[(2000, 100)], false).await?);
    }
    let probe = event("Chaos probe".into(), later, &[(1500, 100_000)], false).await?;

    // Coupons through the API, as an organizer makes them.
    for (i, e) in regular.iter_mut().enumerate() {
        let code = format!("CHAOS{i}{}", tag.to_uppercase());
        let body = json!({ "code": code, "kind": "percent", "value": 20, "max_uses": 40,
                           "ticket_type_ids": e.ticket_types });
        let answer = api
            .call(
                reqwest::Method::POST,
                &format!("/events/{}/coupons", e.id),
                &organizer,
                None,
                Some(&body),
            )
            .await
            .context("no API answered while creating a coupon")?;
        anyhow::ensure!(
            answer.is_success(),
            "creating a coupon: {} {}",
            answer.status,
            answer.body
        );
        e.coupon = Some(code);
    }
    Ok(World {
        organizer,
        buyers: buyer_tokens,
        probe_buyers,
        regular,
        scarce,
        doomed,
        probe,
    })
}

/// A published event, holding seats for a minute, refundable until it
/// starts, offers open for five minutes, its reminder an hour before.
async fn event(
    pool: &DbPool,
    organizer_id: Uuid,
    title: &str,
    starts_at: DateTime<Utc>,
    prices: &[(i64, i32)],
    waitlist: bool,
) -> anyhow::Result<SaleEvent> {
    let (id, ticket_types) = create(
        pool,
        organizer_id,
        &EventSpec {
            title,
            made_by: "boxoffice chaos",
            starts_at,
            prices,
            hold_minutes: 1,
            max_tickets_per_order: 4,
            refundable_until_hours_before: Some(0),
            waitlist_enabled: Some(waitlist),
            waitlist_offer_minutes: Some(5),
            reminder_minutes: Some(&[60]),
            publish: true,
        },
    )
    .await?;
    Ok(SaleEvent {
        id,
        ticket_types,
        coupon: None,
    })
}
