//! `ticket_types`: what a ticket of an event costs and how many there are.
//!
//! `capacity`, `sold` and `held` are the capacity triple of DESIGN.md §5.
//! `ticket_types` is a view: its row (`ticket_type_rows`) keeps `taken`, that
//! is `sold` plus `held`, whose CHECK keeps `taken <= capacity` whatever
//! writes it, and `sold` is summed from the type's sales rows
//! (`ticket_type_sales`). The checkout workflow moves `taken` and counts
//! `sold`; this module only lets organizers change `capacity`, and never below
//! `taken` (one guarded UPDATE, so a concurrent hold can't slip in between a
//! check and the write).
//!
//! Every write here first locks the event row ([`crate::events::lock`]), so it
//! serialises with publishing and cancelling the event.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::events::{self, Event, EventStatus};
use crate::schema::{coupon_ticket_types, coupons, ticket_types};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = ticket_types, check_for_backend(diesel::pg::Pg))]
pub struct TicketType {
    pub id: Uuid,
    pub event_id: Uuid,
    pub name: String,
    pub description: String,
    pub price_minor: i64,
    pub currency: String,
    pub capacity: i32,
    pub sold: i32,
    pub held: i32,
    /// `None`: the event's `max_tickets_per_order` applies.
    pub max_per_order: Option<i32>,
    pub sales_start_at: Option<DateTime<Utc>>,
    pub sales_end_at: Option<DateTime<Utc>>,
    pub sort_order: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Moves on every organizer's change (not on sales and holds).
    pub version: i32,
    /// Units wanted by waitlist entries still waiting: not for the public.
    pub waiting_units: i32,
}

impl TicketType {
    /// Tickets still for sale to the public: what is neither sold, held nor
    /// waited for by the type's waitlist; never negative.
    pub fn available(&self) -> i32 {
        (self.capacity - self.sold - self.held - self.waiting_units).max(0)
    }

    /// Units neither sold nor held (the waitlist's dispatcher serves from them).
    pub fn free(&self) -> i32 {
        self.capacity - self.sold - self.held
    }

    /// Revenue at the current price: `sold × price_minor`. An approximation until
    /// orders record what each buyer paid (coupons, price changes).
    pub fn gross_minor(&self) -> i64 {
        i64::from(self.sold) * self.price_minor
    }
}

/// A new ticket type; its currency must be the event's (or fixes the event's
/// currency when it has none yet).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = ticket_types)]
pub struct NewTicketType {
    pub id: Uuid,
    pub event_id: Uuid,
    pub name: String,
    pub description: String,
    pub price_minor: i64,
    pub currency: String,
    pub capacity: i32,
    pub max_per_order: Option<i32>,
    pub sales_start_at: Option<DateTime<Utc>>,
    pub sales_end_at: Option<DateTime<Utc>>,
    pub sort_order: i32,
}

/// A partial update: `None` leaves a column as it is; `Some(None)` clears it.
/// `capacity` is not here: it goes through the guarded [`update`].
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = ticket_types)]
pub struct TicketTypeChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price_minor: Option<i64>,
    pub max_per_order: Option<Option<i32>>,
    pub sales_start_at: Option<Option<DateTime<Utc>>>,
    pub sales_end_at: Option<Option<DateTime<Utc>>>,
    pub sort_order: Option<i32>,
}

/// The ticket types of one event, in display order.
pub async fn for_event(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
) -> QueryResult<Vec<TicketType>> {
    ticket_types::table
        .filter(ticket_types::event_id.eq(event_id))
        .select(TicketType::as_select())
        .order((ticket_types::sort_order.asc(), ticket_types::id.asc()))
        .load(conn)
        .await
}

/// The ticket types of several events, in display order per event.
pub async fn for_events(
    conn: &mut AsyncPgConnection,
    event_ids: &[Uuid],
) -> QueryResult<Vec<TicketType>> {
    ticket_types::table
        .filter(ticket_types::event_id.eq_any(event_ids))
        .select(TicketType::as_select())
        .order((
            ticket_types::event_id.asc(),
            ticket_types::sort_order.asc(),
            ticket_types::id.asc(),
        ))
        .load(conn)
        .await
}

pub async fn find(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<TicketType>> {
    ticket_types::table
        .filter(ticket_types::id.eq(id))
        .filter(ticket_types::event_id.eq(event_id))
        .select(TicketType::as_select())
        .first(conn)
        .await
        .optional()
}

/// Refusals shared by every ticket-type and coupon write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteRefusal {
    EventNotFound,
    /// Cancelled and completed events don't change.
    EventNotEditable(EventStatus),
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created(TicketType),
    Refused(WriteRefusal),
    /// The event already has another currency.
    CurrencyMismatch {
        event_currency: String,
    },
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    new: &NewTicketType,
) -> QueryResult<CreateOutcome> {
    conn.transaction::<_, diesel::result::Error, _>(async |c| {
        let event = match lock_editable(c, new.event_id).await? {
            Ok(event) => event,
            Err(refusal) => return Ok(CreateOutcome::Refused(refusal)),
        };
        let currency = match event.currency {
            Some(currency) => currency,
            None => events::fix_currency(c, event.id, &new.currency)
                .await?
                .unwrap_or_else(|| new.currency.clone()),
        };
        if currency != new.currency {
            return Ok(CreateOutcome::CurrencyMismatch {
                event_currency: currency,
            });
        }
        let created = diesel::insert_into(ticket_types::table)
            .values(new)
            .returning(TicketType::as_returning())
            .get_result(c)
            .await?;
        Ok(CreateOutcome::Created(created))
    })
    .await
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    Updated(TicketType),
    Refused(WriteRefusal),
    /// The new capacity is below what is already sold or held.
    CapacityBelowCommitted {
        sold: i32,
        held: i32,
    },
    /// The ticket type is at none of the versions the change was made against.
    VersionMismatch {
        current: i32,
    },
}

/// Applies `changes` and, if given, the new capacity, which must stay at or above
/// `sold + held` (`taken`): the check is part of the UPDATE's WHERE, so it is race-free.
/// With `expected_versions`, only while the ticket type is at one of them: every
/// organizer's write locks the event first, so the version cannot move between
/// the check and the write.
pub async fn update(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    id: Uuid,
    changes: &TicketTypeChanges,
    capacity: Option<i32>,
    expected_versions: Option<&[i32]>,
) -> QueryResult<UpdateOutcome> {
    conn.transaction::<_, diesel::result::Error, _>(async |c| {
        if let Err(refusal) = lock_editable(c, event_id).await? {
            return Ok(UpdateOutcome::Refused(refusal));
        }
        if let Some(expected) = expected_versions {
            match find(c, event_id, id).await? {
                None => return Ok(UpdateOutcome::Refused(WriteRefusal::NotFound)),
                Some(current) if !expected.contains(&current.version) => {
                    return Ok(UpdateOutcome::VersionMismatch {
                        current: current.version,
                    });
                }
                Some(_) => {}
            }
        }
        let target = ticket_types::table
            .filter(ticket_types::id.eq(id))
            .filter(ticket_types::event_id.eq(event_id));
        let updated = match capacity {
            Some(capacity) => diesel::update(target.filter(ticket_types::taken.le(capacity)))
                .set((
                    changes,
                    ticket_types::capacity.eq(capacity),
                    ticket_types::version.eq(ticket_types::version + 1),
                    ticket_types::updated_at.eq(diesel::dsl::now),
                ))
                .returning(TicketType::as_returning())
                .get_result(c)
                .await
                .optional()?,
            None => diesel::update(target)
                .set((
                    changes,
                    ticket_types::version.eq(ticket_types::version + 1),
                    ticket_types::updated_at.eq(diesel::dsl::now),
                ))
                .returning(TicketType::as_returning())
                .get_result(c)
                .await
                .optional()?,
        };
        if let Some(updated) = updated {
            return Ok(UpdateOutcome::Updated(updated));
        }
        Ok(match find(c, event_id, id).await? {
            None => UpdateOutcome::Refused(WriteRefusal::NotFound),
            Some(current) => UpdateOutcome::CapacityBelowCommitted {
                sold: current.sold,
                held: current.held,
            },
        })
    })
    .await
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted(TicketType),
    Refused(WriteRefusal),
    /// Tickets of this type are sold or held.
    HasSales {
        sold: i32,
        held: i32,
    },
    /// People joined this type's waitlist.
    HasWaitlist {
        entries: i64,
    },
    /// Coupons restricted to this type would silently apply to every type.
    UsedByCoupons {
        codes: Vec<String>,
    },
    /// A published event must keep something to sell.
    LastOfPublishedEvent,
}

pub async fn delete(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    id: Uuid,
) -> QueryResult<DeleteOutcome> {
    conn.transaction::<_, diesel::result::Error, _>(async |c| {
        let event = match lock_editable(c, event_id).await? {
            Ok(event) => event,
            Err(refusal) => return Ok(DeleteOutcome::Refused(refusal)),
        };
        // The row lock makes the sales check and the delete one decision: a hold
        // (which updates this row) waits for us or we see its result.
        let Some(ticket_type) = ticket_types::table
            .filter(ticket_types::id.eq(id))
            .filter(ticket_types::event_id.eq(event_id))
            .select(TicketType::as_select())
            .for_update()
            .first(c)
            .await
            .optional()?
        else {
            return Ok(DeleteOutcome::Refused(WriteRefusal::NotFound));
        };
        if ticket_type.sold > 0 || ticket_type.held > 0 {
            return Ok(DeleteOutcome::HasSales {
                sold: ticket_type.sold,
                held: ticket_type.held,
            });
        }
        // Waitlist entries (of any status) keep the type: they are its history.
        let entries: i64 = crate::schema::waitlist_entries::table
            .filter(crate::schema::waitlist_entries::ticket_type_id.eq(id))
            .count()
            .get_result(c)
            .await?;
        if entries > 0 {
            return Ok(DeleteOutcome::HasWaitlist { entries });
        }
        let codes: Vec<String> = coupon_ticket_types::table
            .inner_join(coupons::table)
            .filter(coupon_ticket_types::ticket_type_id.eq(id))
            .select(coupons::code)
            .order(coupons::code.asc())
            .load(c)
            .await?;
        if !codes.is_empty() {
            return Ok(DeleteOutcome::UsedByCoupons { codes });
        }
        if event.status == EventStatus::Published {
            let others: i64 = ticket_types::table
                .filter(ticket_types::event_id.eq(event_id))
                .filter(ticket_types::id.ne(id))
                .count()
                .get_result(c)
                .await?;
            if others == 0 {
                return Ok(DeleteOutcome::LastOfPublishedEvent);
            }
        }
        diesel::delete(ticket_types::table.find(id))
            .execute(c)
            .await?;
        Ok(DeleteOutcome::Deleted(ticket_type))
    })
    .await
}

/// Locks the event and checks it still takes catalog changes.
pub(crate) async fn lock_editable(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
) -> QueryResult<Result<Event, WriteRefusal>> {
    Ok(match events::lock(conn, event_id).await? {
        None => Err(WriteRefusal::EventNotFound),
        Some(event) if !event.status.is_editable() => {
            Err(WriteRefusal::EventNotEditable(event.status))
        }
        Some(event) => Ok(event),
    })
}
