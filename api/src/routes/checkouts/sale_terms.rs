//! The terms of an event's sale that a checkout start is checked against (the
//! event's status, dates and limits, its ticket types' windows and limits),
//! kept in memory by the change feed.
//!
//! Every `POST /v1/checkouts` of a flash sale read the same event row and the
//! same ticket type rows again: two of the statements each decision cost
//! Postgres. The terms change rarely (an organizer's edit, a cancellation), and
//! the triggers of migration `000016` announce each such change on
//! [`CATALOG_CHANNEL`](crate::change_feed::CATALOG_CHANNEL), so the API serves
//! them from memory and drops them when they change, as it does sessions. The
//! counters a sale moves (`held`, `sold`, ...) are not part of the terms and
//! announce nothing: the hold decides on them, under the row lock.

use std::sync::{Arc, LazyLock};

use boxoffice_models::events::{self, EventStatus};
use boxoffice_models::ticket_types;
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::error::AppResult;
use crate::state::AppState;

/// What a checkout start checks of an event. Only the columns whose changes
/// migration `000016`'s triggers announce belong here.
#[derive(Debug, Clone)]
pub struct SaleTerms {
    pub status: EventStatus,
    pub ends_at: DateTime<Utc>,
    pub sales_start_at: Option<DateTime<Utc>>,
    pub sales_end_at: Option<DateTime<Utc>>,
    pub hold_minutes: i32,
    pub max_tickets_per_order: i32,
    pub max_tickets_per_participant: Option<i32>,
    pub ticket_types: Vec<TicketTypeTerms>,
}

#[derive(Debug, Clone)]
pub struct TicketTypeTerms {
    pub id: Uuid,
    pub name: String,
    pub sales_start_at: Option<DateTime<Utc>>,
    pub sales_end_at: Option<DateTime<Utc>>,
    pub max_per_order: Option<i32>,
}

/// Reads of terms that are not in memory take turns per event (striped: a
/// few locks, nothing to clean up). A flash sale's first starts, and the
/// first after the kept terms' time is up, arrive together: one reads (the
/// stripe's write lock), the others find what it kept. A start gathered with
/// others waits for the read as a reader of the lock, so that all of them
/// are let through at once when it is done (`kept_or_read`).
const READ_STRIPES: usize = 16;
static READING: LazyLock<Vec<RwLock<()>>> =
    LazyLock::new(|| (0..READ_STRIPES).map(|_| RwLock::new(())).collect());

/// The terms of `event_id`'s sale, from memory, or else from Postgres (and
/// then kept); `None` when there is no such event.
pub async fn of_event(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
) -> AppResult<Option<Arc<SaleTerms>>> {
    let kept = &state.change_feed.views().sale_terms;
    if let Some(terms) = kept.get(&event_id) {
        return Ok(Some(terms));
    }
    // Only while the map keeps what is read: while the change feed is not
    // listening every start reads, and turns would only queue them.
    let _turn = if kept.is_live() {
        Some(READING[stripe(event_id)].write().await)
    } else {
        None
    };
    if let Some(terms) = kept.get(&event_id) {
        return Ok(Some(terms));
    }
    read_and_keep(state, conn, event_id).await
}

/// The terms of `event_id`'s sale, from memory, or else read in turn on a
/// pooled connection and kept: a flash sale's first starts, arriving before
/// anything has read the terms, wait for one of them to read them, and are
/// then written together as the later ones are. The turn comes before the
/// connection, so the starts that wait hold none. `None` when the terms are
/// not kept (the change feed is not listening), there is no such event, or
/// the read failed: the start then goes alone, which reads and tells.
pub async fn kept_or_read(state: &AppState, event_id: Uuid) -> Option<Arc<SaleTerms>> {
    let kept = &state.change_feed.views().sale_terms;
    if let Some(terms) = kept.get(&event_id) {
        return Some(terms);
    }
    if !kept.is_live() {
        return None;
    }
    // Boxed: the caller's future, one per start waiting for its batch in a
    // flood, then keeps no room for the pool's wait (about 2 KB).
    Box::pin(read_in_turn(state, event_id)).await
}

/// [`kept_or_read`] past the map: the read, or the wait for another start's.
async fn read_in_turn(state: &AppState, event_id: Uuid) -> Option<Arc<SaleTerms>> {
    let kept = &state.change_feed.views().sale_terms;
    let turns = &READING[stripe(event_id)];
    let _turn = match turns.try_write() {
        Ok(turn) => turn,
        Err(_) => {
            // Another start is reading (most likely this event's terms):
            // waiting as readers, every start queued behind it is let
            // through at once, and arrives at the batch with the others.
            drop(turns.read().await);
            if let Some(terms) = kept.get(&event_id) {
                return Some(terms);
            }
            // It read another event's terms (the stripe is shared), or its
            // read kept nothing: take a turn.
            turns.write().await
        }
    };
    if let Some(terms) = kept.get(&event_id) {
        return Some(terms);
    }
    let mut conn = state.conn().await.ok()?;
    read_and_keep(state, &mut conn, event_id).await.ok()?
}

/// Reads the terms of `event_id`'s sale and keeps them (unless a change to
/// them was announced meanwhile).
async fn read_and_keep(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
) -> AppResult<Option<Arc<SaleTerms>>> {
    let kept = &state.change_feed.views().sale_terms;
    // Registered before the reads, so a change committed meanwhile stops the store.
    let fill = kept.begin_fill(event_id);
    let Some(event) = events::find(conn, event_id).await? else {
        return Ok(None);
    };
    let types = ticket_types::for_event(conn, event_id).await?;
    let terms = Arc::new(SaleTerms {
        status: event.status,
        ends_at: event.ends_at,
        sales_start_at: event.sales_start_at,
        sales_end_at: event.sales_end_at,
        hold_minutes: event.hold_minutes,
        max_tickets_per_order: event.max_tickets_per_order,
        max_tickets_per_participant: event.max_tickets_per_participant,
        ticket_types: types
            .into_iter()
            .map(|t| TicketTypeTerms {
                id: t.id,
                name: t.name,
                sales_start_at: t.sales_start_at,
                sales_end_at: t.sales_end_at,
                max_per_order: t.max_per_order,
            })
            .collect(),
    });
    fill.store(terms.clone());
    Ok(Some(terms))
}

fn stripe(event_id: Uuid) -> usize {
    (event_id.as_u128() % READ_STRIPES as u128) as usize
}
