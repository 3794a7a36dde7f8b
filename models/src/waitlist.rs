//! `waitlist_entries` and the `waiting_units` counter of their ticket type.
//!
//! `waiting_units` is the sum of the quantities of the type's entries in
//! status `waiting`: every write that moves an entry in or out of `waiting`
//! moves the counter in the same transaction, under the type's row lock
//! (taken first, so joins, leaves and the dispatcher are ordered). Public sale
//! takes only `capacity - sold - held - waiting_units` (see [`crate::holds`]).
//!
//! Serving order: vip before standard, each tier by join time, then id.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{ticket_types, waitlist_entries};

mod listing;
mod serving;
pub use listing::{After, for_event, for_participant, units_ahead};
pub use serving::{
    checkout_released, mark_accepted, mark_offered, set_blocked_since, types_to_serve,
    waiting_in_order,
};

pub const WAITING: &str = "waiting";
pub const OFFERED: &str = "offered";
pub const ACCEPTED: &str = "accepted";
pub const EXPIRED: &str = "expired";
pub const LEFT: &str = "left";

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = waitlist_entries, check_for_backend(diesel::pg::Pg))]
pub struct Entry {
    pub id: Uuid,
    pub event_id: Uuid,
    pub ticket_type_id: Uuid,
    pub participant_id: Uuid,
    pub quantity: i32,
    pub priority: String,
    pub status: String,
    pub joined_at: DateTime<Utc>,
    pub blocked_since: Option<DateTime<Utc>>,
    pub offer_run_id: Option<Uuid>,
    pub offered_at: Option<DateTime<Utc>>,
    pub offer_expires_at: Option<DateTime<Utc>>,
    pub checkout_run_id: Option<Uuid>,
    pub ended_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl Entry {
    pub fn is_vip(&self) -> bool {
        self.priority == "vip"
    }
}

/// The capacity counters of a ticket type, read under its row lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable)]
pub struct Counters {
    pub event_id: Uuid,
    pub capacity: i32,
    pub sold: i32,
    pub held: i32,
    pub waiting_units: i32,
}

impl Counters {
    /// Neither sold nor held.
    pub fn free(&self) -> i32 {
        self.capacity - self.sold - self.held
    }

    /// What the public may still take.
    pub fn public_available(&self) -> i32 {
        (self.free() - self.waiting_units).max(0)
    }
}

/// The counters' columns.
type CounterColumns = (
    ticket_types::event_id,
    ticket_types::capacity,
    ticket_types::sold,
    ticket_types::held,
    ticket_types::waiting_units,
);

const COUNTERS: CounterColumns = (
    ticket_types::event_id,
    ticket_types::capacity,
    ticket_types::sold,
    ticket_types::held,
    ticket_types::waiting_units,
);

/// Locks a ticket type's row as an update of its counters does (`FOR NO KEY
/// UPDATE`): holds and other counter writes wait, but inserting a ticket, a
/// hold or an entry of the type (a key-share lock, for the foreign key) does
/// not.
pub async fn lock_counters(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<Counters>> {
    ticket_types::table
        .filter(ticket_types::id.eq(id))
        .select(COUNTERS)
        .for_no_key_update()
        .first(conn)
        .await
        .optional()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRefusal {
    /// The public can buy that many now.
    TicketsAvailable {
        available: i32,
    },
    /// The participant already has an active entry for this type.
    AlreadyWaiting {
        entry_id: Uuid,
    },
    NoSuchTicketType,
}

pub struct NewEntry {
    pub participant_id: Uuid,
    pub event_id: Uuid,
    pub ticket_type_id: Uuid,
    pub quantity: i32,
}

/// Joins the waitlist of a ticket type: under the type's row lock, refused
/// while the public can buy that many; the entry and its units
/// (`waiting_units += quantity`) in one transaction.
pub async fn join(
    conn: &mut AsyncPgConnection,
    new: &NewEntry,
) -> QueryResult<Result<Entry, JoinRefusal>> {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        let Some(counters) = lock_counters(conn, new.ticket_type_id).await? else {
            return Ok(Err(JoinRefusal::NoSuchTicketType));
        };
        if counters.event_id != new.event_id {
            return Ok(Err(JoinRefusal::NoSuchTicketType));
        }
        let available = counters.free() - counters.waiting_units;
        if available >= new.quantity {
            return Ok(Err(JoinRefusal::TicketsAvailable { available }));
        }
        if let Some(entry_id) = active_entry(conn, new.participant_id, new.ticket_type_id).await? {
            return Ok(Err(JoinRefusal::AlreadyWaiting { entry_id }));
        }
        let entry: Entry = diesel::insert_into(waitlist_entries::table)
            .values((
                waitlist_entries::id.eq(Uuid::now_v7()),
                waitlist_entries::event_id.eq(new.event_id),
                waitlist_entries::ticket_type_id.eq(new.ticket_type_id),
                waitlist_entries::participant_id.eq(new.participant_id),
                waitlist_entries::quantity.eq(new.quantity),
            ))
            .returning(Entry::as_returning())
            .get_result(conn)
            .await?;
        add_waiting(conn, new.ticket_type_id, new.quantity).await?;
        Ok(Ok(entry))
    })
    .await
}

async fn active_entry(
    conn: &mut AsyncPgConnection,
    participant_id: Uuid,
    ticket_type_id: Uuid,
) -> QueryResult<Option<Uuid>> {
    waitlist_entries::table
        .filter(waitlist_entries::participant_id.eq(participant_id))
        .filter(waitlist_entries::ticket_type_id.eq(ticket_type_id))
        .filter(waitlist_entries::status.eq_any([WAITING, OFFERED]))
        .select(waitlist_entries::id)
        .first(conn)
        .await
        .optional()
}

async fn add_waiting(
    conn: &mut AsyncPgConnection,
    ticket_type_id: Uuid,
    delta: i32,
) -> QueryResult<()> {
    diesel::update(ticket_types::table.find(ticket_type_id))
        .set(ticket_types::waiting_units.eq(ticket_types::waiting_units + delta))
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Entry>> {
    waitlist_entries::table
        .find(id)
        .select(Entry::as_select())
        .first(conn)
        .await
        .optional()
}

/// Locks an entry (inside a transaction).
pub async fn lock(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Entry>> {
    waitlist_entries::table
        .find(id)
        .for_update()
        .select(Entry::as_select())
        .first(conn)
        .await
        .optional()
}

/// The entry an offer run holds units for.
pub async fn lock_by_offer_run(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
) -> QueryResult<Option<Entry>> {
    waitlist_entries::table
        .filter(waitlist_entries::offer_run_id.eq(run_id))
        .for_update()
        .select(Entry::as_select())
        .first(conn)
        .await
        .optional()
}

/// What leaving did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Left {
    /// The entry waited: it is `left` and its units are no longer reserved.
    Left(Entry),
    /// The entry holds an offer: its run releases the units (signal it).
    Offered(Entry),
    /// Accepted, expired, declined or left before.
    NotActive(Entry),
}

/// Leaves a waitlist. `None`: no such entry of this participant.
pub async fn leave(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    participant_id: Uuid,
) -> QueryResult<Option<Left>> {
    let Some(entry) = find(conn, id).await? else {
        return Ok(None);
    };
    if entry.participant_id != participant_id {
        return Ok(None);
    }
    // An offered entry is left through its offer run (which locks the entry
    // before the type's row: taking them here in the other order could
    // deadlock with it), and an ended one stays as it is.
    match entry.status.as_str() {
        WAITING => {}
        OFFERED => return Ok(Some(Left::Offered(entry))),
        _ => return Ok(Some(Left::NotActive(entry))),
    }
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        // The type's row first, as every write of `waiting_units` does.
        lock_counters(conn, entry.ticket_type_id).await?;
        let Some(entry) = lock(conn, id).await? else {
            return Ok(None);
        };
        Ok(Some(match entry.status.as_str() {
            WAITING => {
                let entry = set_status(conn, id, LEFT).await?;
                add_waiting(conn, entry.ticket_type_id, -entry.quantity).await?;
                Left::Left(entry)
            }
            OFFERED => Left::Offered(entry),
            _ => Left::NotActive(entry),
        }))
    })
    .await
}

/// Ends an entry with `status` (not `waiting`; the caller moves the counter).
pub async fn set_status(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status: &str,
) -> QueryResult<Entry> {
    diesel::update(waitlist_entries::table.find(id))
        .set((
            waitlist_entries::status.eq(status),
            waitlist_entries::ended_at.eq(diesel::dsl::now),
            waitlist_entries::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Entry::as_returning())
        .get_result(conn)
        .await
}

/// Sets an entry's tier. `None`: no such entry of this event.
pub async fn set_priority(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    id: Uuid,
    priority: &str,
) -> QueryResult<Option<Entry>> {
    diesel::update(
        waitlist_entries::table
            .find(id)
            .filter(waitlist_entries::event_id.eq(event_id)),
    )
    .set((
        waitlist_entries::priority.eq(priority),
        waitlist_entries::updated_at.eq(diesel::dsl::now),
    ))
    .returning(Entry::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Ends the waiting entries of a cancelled event (`left`: they end without an
/// offer, as when their participant leaves) and gives its types' waiting
/// units back. Offered entries
/// keep their run: it releases their units at its deadline, and an accept
/// meets a cancelled event. Call in the cancelling transaction, after the
/// event's row is locked: types are locked in id order, as every write of
/// `waiting_units` locks its type first.
pub async fn end_for_cancelled_event(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
) -> QueryResult<usize> {
    let types: Vec<Uuid> = ticket_types::table
        .filter(ticket_types::event_id.eq(event_id))
        .order(ticket_types::id.asc())
        .select(ticket_types::id)
        .for_no_key_update()
        .load(conn)
        .await?;
    if types.is_empty() {
        return Ok(0);
    }
    diesel::update(ticket_types::table.filter(ticket_types::id.eq_any(&types)))
        .set(ticket_types::waiting_units.eq(0))
        .execute(conn)
        .await?;
    diesel::update(
        waitlist_entries::table
            .filter(waitlist_entries::event_id.eq(event_id))
            .filter(waitlist_entries::status.eq(WAITING)),
    )
    .set((
        waitlist_entries::status.eq(LEFT),
        waitlist_entries::blocked_since.eq(None::<chrono::DateTime<chrono::Utc>>),
        waitlist_entries::ended_at.eq(diesel::dsl::now),
        waitlist_entries::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await
}
