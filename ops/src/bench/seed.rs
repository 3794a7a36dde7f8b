//! What the flash sale needs in the database: an organizer, the buyers with
//! live sessions and access tokens, a published event with one hot ticket
//! type, and a separate draft ticket type for the raw baseline.
//!
//! Buyers are inserted through the models and signed in the way
//! `POST /v1/auth/login` does it (a session with a hashed refresh token, then
//! an HS256 access token naming it), without an argon2 verification per buyer:
//! seeding 2,000 buyers takes seconds instead of minutes, and the sale is what
//! is measured.

use std::sync::Arc;

use anyhow::Context;
use boxoffice_api::auth::{jwt, refresh};
use boxoffice_api::config::JwtConfig;
use boxoffice_models::DbPool;
use boxoffice_models::events::{self, NewEvent, PublishOutcome};
use boxoffice_models::sessions::{self, NewSession};
use boxoffice_models::ticket_types::{self, CreateOutcome, NewTicketType};
use boxoffice_models::users::{self, NewUser, Role};
use boxoffice_models::venues::{self, NewVenue};
use chrono::{Duration, Utc};
use tokio::task::JoinSet;
use uuid::Uuid;

/// A signed-in buyer.
#[derive(Debug, Clone)]
pub struct Buyer {
    /// `Bearer …`
    pub authorization: String,
}

#[derive(Debug, Clone)]
pub struct Seeded {
    pub buyers: Vec<Buyer>,
    pub event_id: Uuid,
    pub hot_ticket_type: Uuid,
    pub baseline_event_id: Uuid,
    pub baseline_ticket_type: Uuid,
}

/// Seats on the baseline's row: never runs out during a few seconds of holds.
const BASELINE_CAPACITY: i32 = 1_000_000;
/// The hot ticket type's price (a paid checkout goes through the provider).
const PRICE_MINOR: i64 = 4500;
/// How many buyers are inserted at once.
const SEED_CONCURRENCY: usize = 16;

pub async fn seed(
    pool: &DbPool,
    jwt_config: &JwtConfig,
    buyers: usize,
    capacity: i32,
) -> anyhow::Result<Seeded> {
    let tag = Uuid::new_v4().simple().to_string()[..10].to_owned();
    // Nobody signs in with it: one hash shared by every bench user.
    let password_hash =
        boxoffice_api::auth::password::hash_password(&crate::secrets::random_token(24)).await?;
    let organizer = {
        let mut conn = pool.get().await?;
        let new = NewUser::new(
            format!("bench-organizer-{tag}@boxoffice.test"),
            "Bench Organizer".into(),
            password_hash.clone(),
            &[Role::Organizer],
        );
        users::insert(&mut conn, &new)
            .await?
            .context("the bench organizer's email is taken")?
    };
    let (event_id, hot_ticket_type) =
        event(pool, organizer.id, "Bench flash sale", capacity, true).await?;
    let (baseline_event_id, baseline_ticket_type) = event(
        pool,
        organizer.id,
        "Bench raw baseline",
        BASELINE_CAPACITY,
        false,
    )
    .await?;

    let jwt_config = Arc::new(jwt_config.clone());
    let password_hash = Arc::new(password_hash);
    let mut made = Vec::with_capacity(buyers);
    let mut tasks = JoinSet::new();
    for chunk in (0..buyers)
        .collect::<Vec<_>>()
        .chunks(buyers.div_ceil(SEED_CONCURRENCY).max(1))
    {
        let (pool, jwt_config, password_hash, tag) = (
            pool.clone(),
            jwt_config.clone(),
            password_hash.clone(),
            tag.clone(),
        );
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            let mut conn = pool.get().await?;
            let mut out = Vec::with_capacity(chunk.len());
            for i in chunk {
                let new = NewUser::new(
                    format!("bench-buyer-{tag}-{i}@boxoffice.test"),
                    format!("Buyer {i}"),
                    (*password_hash).clone(),
                    &[Role::Participant],
                );
                let user = users::insert(&mut conn, &new)
                    .await?
                    .context("a bench buyer's email is taken")?;
                out.push(sign_in(&mut conn, &jwt_config, &user).await?);
            }
            Ok::<_, anyhow::Error>(out)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        made.extend(joined.context("a seeding task panicked")??);
    }
    Ok(Seeded {
        buyers: made,
        event_id,
        hot_ticket_type,
        baseline_event_id,
        baseline_ticket_type,
    })
}

/// A session and an access token, as a login makes them.
pub(super) async fn sign_in(
    conn: &mut diesel_async::AsyncPgConnection,
    jwt_config: &JwtConfig,
    user: &users::User,
) -> anyhow::Result<Buyer> {
    let token = refresh::generate();
    let session = sessions::start(
        conn,
        &NewSession {
            id: Uuid::now_v7(),
            user_id: user.id,
            expires_at: Utc::now() + Duration::days(1),
            user_agent: Some("boxoffice bench".into()),
            ip: None,
        },
        &token.hash,
    )
    .await?;
    let access = jwt::issue(jwt_config, user.id, session.id, &user.roles())?;
    Ok(Buyer {
        authorization: format!("Bearer {}", access.token),
    })
}

/// An event a month ahead with one ticket type of `capacity`; published (on
/// sale) or left a draft.
pub(super) async fn event(
    pool: &DbPool,
    organizer_id: Uuid,
    title: &str,
    capacity: i32,
    publish: bool,
) -> anyhow::Result<(Uuid, Uuid)> {
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
    let starts_at = Utc::now() + Duration::days(30);
    let event = events::insert(
        &mut conn,
        &NewEvent {
            id: Uuid::now_v7(),
            organizer_id,
            venue_id: Some(venue.id),
            online: false,
            title: title.into(),
            description: "Created by `boxoffice bench checkout`.".into(),
            category: "music".into(),
            currency: Some("EUR".into()),
            starts_at,
            ends_at: starts_at + Duration::hours(3),
            sales_start_at: None,
            sales_end_at: None,
            hold_minutes: 15,
            max_tickets_per_order: 10,
            max_tickets_per_participant: None,
            refundable_until_hours_before: None,
            waitlist_enabled: None,
            waitlist_offer_minutes: None,
        },
    )
    .await?;
    let new = NewTicketType {
        id: Uuid::now_v7(),
        event_id: event.id,
        name: "General".into(),
        description: String::new(),
        price_minor: PRICE_MINOR,
        currency: "EUR".into(),
        capacity,
        max_per_order: None,
        sales_start_at: None,
        sales_end_at: None,
        sort_order: 0,
    };
    let ticket_type = match ticket_types::create(&mut conn, &new).await? {
        CreateOutcome::Created(t) => t.id,
        other => anyhow::bail!("creating the bench ticket type: {other:?}"),
    };
    if publish {
        match events::publish(&mut conn, event.id).await? {
            PublishOutcome::Published(_) => {}
            other => anyhow::bail!("publishing the bench event: {other:?}"),
        }
    }
    Ok((event.id, ticket_type))
}

/// Removes the baseline's draft event; its ticket type goes with it (its row
/// was only ever touched by the baselines).
pub async fn remove_baseline(pool: &DbPool, seeded: &Seeded) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    boxoffice_models::events::delete_draft(&mut conn, seeded.baseline_event_id).await?;
    Ok(())
}
