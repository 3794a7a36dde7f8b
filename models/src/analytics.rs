//! Organizer analytics: reads of the counters that triggers keep in the
//! transactions that write the ledger (migrations/2026-12-01-000010_analytics),
//! joined with the live capacity counters of `ticket_types` and the waitlist.
//! Sales are read from the live slots and the history the cleanup moves past
//! slots into (`analytics_history`): the money totals from that history's
//! per-event sums (`analytics_money`), the time series from its slots
//! (`analytics_series`).
//!
//! Every function takes a shared connection, so that a request can send them
//! all at once (diesel-async pipelines concurrent queries on one connection)
//! inside one read-only snapshot. They are written in Diesel's query builder
//! where they can be, so each is prepared once per connection: PostgreSQL
//! planned every statement of every request before, a third of the time of
//! the reads. Every function takes an optional event: `Some` for one event's
//! figures, `None` for the totals across every event
//! (admins). Amounts are minor units; money rows carry their currency.

use diesel::dsl::{count, sum};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

pub use crate::analytics_money::MoneyFigures;
use crate::analytics_money::{sales, with_refunds};
use crate::analytics_series::{SeriesBucket, SeriesRequest, series};
use crate::schema::{
    analytics_checkouts, analytics_coupons, analytics_refunds, coupons, events,
    ticket_types as types, venues,
};
use crate::venues::lower;

diesel::define_sql_function! {
    /// Postgres `int8(numeric)`: a `sum` of `bigint`s is a `numeric`, and
    /// every sum here fits a `bigint` (minor units and counts of an event).
    fn int8(x: Nullable<diesel::sql_types::Numeric>) -> Nullable<BigInt>;
}

/// One ticket type: live capacity counters and what its tickets paid.
#[derive(Debug, Clone, Queryable)]
pub struct TicketTypeFigures {
    pub id: Uuid,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub capacity: i32,
    pub sold: i32,
    pub held: i32,
    /// Units wanted by waitlist entries still waiting.
    pub waiting_units: i32,
    /// Tickets ever issued (refunded ones included).
    pub issued: i64,
    /// What the issued tickets paid (their price less their share of the discount).
    pub paid_minor: i64,
    pub checked_in: i64,
    /// Tickets voided by a refund.
    pub voided: i64,
}

impl TicketTypeFigures {
    /// Units the public sale may still take.
    pub fn available(&self) -> i32 {
        (self.capacity - self.sold - self.held - self.waiting_units).max(0)
    }
}

/// The ticket types of an event (every event's with `None`), in display order.
pub async fn ticket_types(
    mut conn: &AsyncPgConnection,
    event_id: Option<Uuid>,
) -> diesel::QueryResult<Vec<TicketTypeFigures>> {
    let columns = (
        types::id,
        types::name,
        types::price_minor,
        types::currency,
        types::capacity,
        types::sold,
        types::held,
        types::waiting_units,
        types::tickets_issued,
        types::tickets_paid_minor,
        types::tickets_checked_in,
        types::tickets_voided,
    );
    match event_id {
        Some(event_id) => {
            types::table
                .filter(types::event_id.eq(event_id))
                .order((types::sort_order, types::id))
                .select(columns)
                .load(&mut conn)
                .await
        }
        None => {
            types::table
                .order((types::event_id, types::sort_order, types::id))
                .select(columns)
                .load(&mut conn)
                .await
        }
    }
}

/// Checkout runs by where they stand (see `analytics_checkout_outcome` in the migration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeCount {
    pub outcome: String,
    pub runs: i64,
}

/// Runs per outcome, by outcome.
pub async fn checkout_outcomes(
    mut conn: &AsyncPgConnection,
    event_id: Option<Uuid>,
) -> diesel::QueryResult<Vec<OutcomeCount>> {
    let mut query = analytics_checkouts::table
        .group_by(analytics_checkouts::outcome)
        .select((
            analytics_checkouts::outcome,
            int8(sum(analytics_checkouts::runs)),
        ))
        .order(analytics_checkouts::outcome)
        .into_boxed();
    if let Some(event_id) = event_id {
        query = query.filter(analytics_checkouts::event_id.eq(event_id));
    }
    let rows: Vec<(String, Option<i64>)> = query.load(&mut conn).await?;
    Ok(rows
        .into_iter()
        .map(|(outcome, runs)| OutcomeCount {
            outcome,
            runs: runs.unwrap_or(0),
        })
        .collect())
}

/// One coupon's orders and the discount they got.
#[derive(Debug, Clone)]
pub struct CouponFigures {
    pub id: Uuid,
    pub code: String,
    pub uses: i64,
    pub discount_minor: i64,
}

/// Every coupon of the event, by code (unused ones too).
pub async fn coupons(
    mut conn: &AsyncPgConnection,
    event_id: Uuid,
) -> diesel::QueryResult<Vec<CouponFigures>> {
    let rows: Vec<(Uuid, String, Option<i64>, Option<i64>)> = coupons::table
        .left_join(analytics_coupons::table.on(analytics_coupons::coupon_id.eq(coupons::id)))
        .filter(coupons::event_id.eq(event_id))
        .order(lower(coupons::code))
        .select((
            coupons::id,
            coupons::code,
            analytics_coupons::uses.nullable(),
            analytics_coupons::discount_minor.nullable(),
        ))
        .load(&mut conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, code, uses, discount_minor)| CouponFigures {
            id,
            code,
            uses: uses.unwrap_or(0),
            discount_minor: discount_minor.unwrap_or(0),
        })
        .collect())
}

/// Refunds that succeeded, by who asked and currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundFigures {
    pub requested_by: String,
    pub currency: String,
    pub refunds: i64,
    pub refunded_minor: i64,
}

/// Refunds by requester and currency, in that order (every event's summed with `None`).
pub async fn refunds(
    mut conn: &AsyncPgConnection,
    event_id: Option<Uuid>,
) -> diesel::QueryResult<Vec<RefundFigures>> {
    let mut query = analytics_refunds::table
        .group_by((analytics_refunds::requested_by, analytics_refunds::currency))
        .select((
            analytics_refunds::requested_by,
            analytics_refunds::currency,
            int8(sum(analytics_refunds::refunds)),
            int8(sum(analytics_refunds::refunded_minor)),
        ))
        .order((analytics_refunds::requested_by, analytics_refunds::currency))
        .into_boxed();
    if let Some(event_id) = event_id {
        query = query.filter(analytics_refunds::event_id.eq(event_id));
    }
    let rows: Vec<(String, String, Option<i64>, Option<i64>)> = query.load(&mut conn).await?;
    Ok(rows
        .into_iter()
        .map(
            |(requested_by, currency, refunds, refunded_minor)| RefundFigures {
                requested_by,
                currency,
                refunds: refunds.unwrap_or(0),
                refunded_minor: refunded_minor.unwrap_or(0),
            },
        )
        .collect())
}

/// Waitlist entries of one currency's ticket types.
#[derive(Debug, Clone, Default, QueryableByName)]
pub struct WaitlistFigures {
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub joined: i64,
    #[diesel(sql_type = BigInt)]
    pub waiting: i64,
    /// Entries that were offered units (whatever became of the offer).
    #[diesel(sql_type = BigInt)]
    pub offered: i64,
    #[diesel(sql_type = BigInt)]
    pub accepted: i64,
    #[diesel(sql_type = BigInt)]
    pub expired: i64,
    #[diesel(sql_type = BigInt)]
    pub declined: i64,
    #[diesel(sql_type = BigInt)]
    pub left: i64,
    /// Accepted offers whose checkout completed: offers that became sales.
    #[diesel(sql_type = BigInt)]
    pub offers_sold: i64,
    /// Units wanted by the entries still waiting.
    #[diesel(sql_type = BigInt)]
    pub waiting_units: i64,
    /// Those units at today's price of their ticket type.
    #[diesel(sql_type = BigInt)]
    pub waiting_value_minor: i64,
}

/// Read from `waitlist_entries` (indexed by event and status): entries are
/// few next to bookings, so they need no counters.
pub async fn waitlist(
    mut conn: &AsyncPgConnection,
    event_id: Option<Uuid>,
) -> diesel::QueryResult<Vec<WaitlistFigures>> {
    diesel::sql_query(
        "SELECT t.currency,
                count(*) AS joined,
                count(*) FILTER (WHERE w.status = 'waiting') AS waiting,
                count(*) FILTER (WHERE w.offered_at IS NOT NULL) AS offered,
                count(*) FILTER (WHERE w.status = 'accepted') AS accepted,
                count(*) FILTER (WHERE w.status = 'expired') AS expired,
                count(*) FILTER (WHERE w.status = 'declined') AS declined,
                count(*) FILTER (WHERE w.status = 'left') AS left,
                count(*) FILTER (WHERE w.status = 'accepted' AND r.status = 'completed') AS offers_sold,
                COALESCE(sum(w.quantity) FILTER (WHERE w.status = 'waiting'), 0)::bigint AS waiting_units,
                COALESCE(sum(w.quantity * t.price_minor) FILTER (WHERE w.status = 'waiting'), 0)::bigint
                    AS waiting_value_minor
           FROM waitlist_entries w
           JOIN ticket_types t ON t.id = w.ticket_type_id
           LEFT JOIN workflow_runs r ON r.id = w.checkout_run_id
          WHERE $1::uuid IS NULL OR w.event_id = $1
          GROUP BY t.currency ORDER BY t.currency",
    )
    .bind::<Nullable<SqlUuid>, _>(event_id)
    .load(&mut conn)
    .await
}

/// The time zone of the event's venue; `None` for an online event (or no such event).
pub async fn event_timezone(
    mut conn: &AsyncPgConnection,
    event_id: Uuid,
) -> diesel::QueryResult<Option<String>> {
    let timezone: Option<Option<String>> = events::table
        .left_join(venues::table)
        .filter(events::id.eq(event_id))
        .select(venues::timezone.nullable())
        .first(&mut conn)
        .await
        .optional()?;
    Ok(timezone.flatten())
}

/// Events with at least one ticket type (admins' totals).
pub async fn events_on_sale_count(mut conn: &AsyncPgConnection) -> diesel::QueryResult<i64> {
    types::table
        .select(count(types::event_id).aggregate_distinct())
        .get_result(&mut conn)
        .await
}

/// Everything an event's analytics show.
#[derive(Debug, Clone)]
pub struct EventFigures {
    pub ticket_types: Vec<TicketTypeFigures>,
    pub money: Vec<MoneyFigures>,
    pub checkout_outcomes: Vec<OutcomeCount>,
    pub coupons: Vec<CouponFigures>,
    pub waitlist: Vec<WaitlistFigures>,
    pub refunds: Vec<RefundFigures>,
    pub series: Vec<SeriesBucket>,
}

/// Every figure of one event, read in one snapshot (a sale committing
/// meanwhile is in all of them or in none), its queries sent together.
pub async fn event_figures(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    series_request: &SeriesRequest<'_>,
) -> diesel::QueryResult<EventFigures> {
    let event = Some(event_id);
    let r = series_request;
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(async move |conn| {
            let conn: &AsyncPgConnection = conn;
            let (ticket_types, sales, checkout_outcomes, coupons, waitlist, refunds, series) = futures::try_join!(
                ticket_types(conn, event),
                sales(conn, event),
                checkout_outcomes(conn, event),
                coupons(conn, event_id),
                waitlist(conn, event),
                refunds(conn, event),
                series(conn, event_id, r.timezone, r.granularity, r.from, r.to),
            )?;
            Ok(EventFigures {
                ticket_types,
                money: with_refunds(sales, &refunds),
                checkout_outcomes,
                coupons,
                waitlist,
                refunds,
                series,
            })
        })
        .await
}

/// The totals across every event (admins).
#[derive(Debug, Clone)]
pub struct AllFigures {
    pub events: i64,
    pub ticket_types: Vec<TicketTypeFigures>,
    pub money: Vec<MoneyFigures>,
    pub checkout_outcomes: Vec<OutcomeCount>,
    pub waitlist: Vec<WaitlistFigures>,
    pub refunds: Vec<RefundFigures>,
}

/// [`AllFigures`], read in one snapshot, its queries sent together.
pub async fn all_figures(conn: &mut AsyncPgConnection) -> diesel::QueryResult<AllFigures> {
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(async |conn| {
            let conn: &AsyncPgConnection = conn;
            let (events, ticket_types, sales, checkout_outcomes, waitlist, refunds) = futures::try_join!(
                events_on_sale_count(conn),
                ticket_types(conn, None),
                sales(conn, None),
                checkout_outcomes(conn, None),
                waitlist(conn, None),
                refunds(conn, None),
            )?;
            Ok(AllFigures {
                events,
                ticket_types,
                money: with_refunds(sales, &refunds),
                checkout_outcomes,
                waitlist,
                refunds,
            })
        })
        .await
}
