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
use boxoffice_models::sessions::{self, NewSession};
use boxoffice_models::users::{self, NewUser, Role};
use chrono::{Duration, Utc};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::sale_event::{EventSpec, create};

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
pub(crate) async fn sign_in(
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
    let spec = EventSpec {
        title,
        made_by: "boxoffice bench",
        starts_at: Utc::now() + Duration::days(30),
        prices: &[(PRICE_MINOR, capacity)],
        hold_minutes: 15,
        max_tickets_per_order: 10,
        refundable_until_hours_before: None,
        waitlist_enabled: None,
        waitlist_offer_minutes: None,
        reminder_minutes: None,
        publish,
    };
    let (event, ticket_types) = create(pool, organizer_id, &spec).await?;
    Ok((event, ticket_types[0]))
}

/// Removes the baseline's draft event; its ticket type goes with it (its row
/// was only ever touched by the baselines).
pub async fn remove_baseline(pool: &DbPool, seeded: &Seeded) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    boxoffice_models::events::delete_draft(&mut conn, seeded.baseline_event_id).await?;
    Ok(())
}
