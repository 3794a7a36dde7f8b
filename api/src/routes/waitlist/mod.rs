//! Waitlists: a participant joins the waitlist of a ticket type that cannot
//! sell them what they ask, is offered the units when they come back (a
//! `waitlist_offer` run holds them until its deadline), and accepts (a
//! checkout that adopts the held units) or declines. Organizers see an
//! event's waitlist in serving order and move entries between tiers.
//!
//! Serving policy (also in `ops/DECISIONS.md`): vip entries first, each tier
//! by join time. Entries are offered in that order while they fit in the free
//! units. The first entry that does not fit keeps every freed unit for itself
//! for a window (`BOXOFFICE_WAITLIST_HEAD_WAIT_SECS`, 30 minutes by default);
//! once that window has passed, smaller entries behind it are offered the
//! units it cannot use, and its window starts again.

pub mod accept;
pub mod decline;
pub mod join;
pub mod leave;
pub mod list;
pub mod mine;
pub mod priority;

use boxoffice_models::waitlist::{self, Entry};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::runs::status_path;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(join::join_waitlist, list::list_waitlist))
        .routes(routes!(priority::set_priority))
        .routes(routes!(mine::my_waitlist))
        .routes(routes!(leave::leave_waitlist))
        .routes(routes!(accept::accept_offer))
        .routes(routes!(decline::decline_offer))
}

/// An open (or past) offer of an entry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OfferView {
    /// The `waitlist_offer` run holding the tickets.
    pub run_id: Uuid,
    pub status_url: String,
    pub offered_at: Option<DateTime<Utc>>,
    /// Accept before this; afterwards the tickets go to the next entry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A waitlist entry as its participant sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EntryView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub ticket_type_id: Uuid,
    pub quantity: i32,
    /// `vip` or `standard`.
    pub priority: String,
    /// `waiting`, `offered`, `accepted`, `expired`, `declined`, `left`.
    pub status: String,
    pub joined_at: DateTime<Utc>,
    /// While waiting: how many units the entries ahead of it wait for.
    pub position: Option<i64>,
    /// The offer, once made.
    pub offer: Option<OfferView>,
    /// The checkout of an accepted offer.
    pub checkout_run_id: Option<Uuid>,
}

impl EntryView {
    pub fn new(entry: &Entry, position: Option<i64>) -> Self {
        EntryView {
            id: entry.id,
            event_id: entry.event_id,
            ticket_type_id: entry.ticket_type_id,
            quantity: entry.quantity,
            priority: entry.priority.clone(),
            status: entry.status.clone(),
            joined_at: entry.joined_at,
            position,
            offer: entry.offer_run_id.map(|run_id| OfferView {
                run_id,
                status_url: status_path(run_id),
                offered_at: entry.offered_at,
                expires_at: entry.offer_expires_at,
            }),
            checkout_run_id: entry.checkout_run_id,
        }
    }

    /// With its position when it waits.
    pub async fn with_position(conn: &mut AsyncPgConnection, entry: &Entry) -> AppResult<Self> {
        let position = if entry.status == waitlist::WAITING {
            Some(waitlist::units_ahead(conn, entry).await?)
        } else {
            None
        };
        Ok(EntryView::new(entry, position))
    }
}

/// The participant's own entry; anybody else's is a 404.
pub async fn own_entry(
    conn: &mut AsyncPgConnection,
    entry_id: Uuid,
    participant_id: Uuid,
) -> AppResult<Entry> {
    match waitlist::find(conn, entry_id).await? {
        Some(entry) if entry.participant_id == participant_id => Ok(entry),
        _ => Err(not_found()),
    }
}

pub fn not_found() -> AppError {
    AppError::not_found("waitlist entry")
}

/// Why an entry's offer cannot be answered now.
pub fn offer_not_open(entry: &Entry) -> AppError {
    match entry.status.as_str() {
        waitlist::WAITING => {
            AppError::conflict("not_offered", "this entry has not been offered tickets yet")
        }
        waitlist::ACCEPTED => AppError::conflict("offer_accepted", "this offer was accepted"),
        waitlist::OFFERED => AppError::conflict(
            "offer_just_made",
            "an offer was made for this entry meanwhile; try again",
        ),
        waitlist::EXPIRED => AppError::conflict("offer_expired", "this offer has expired"),
        _ => AppError::conflict(
            "entry_not_active",
            "this entry is no longer on the waitlist",
        ),
    }
    .with("entry_status", entry.status.clone())
}
