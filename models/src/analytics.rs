//! Organizer analytics: reads of the counters that triggers keep in the
//! transactions that write the ledger (migrations/2026-12-01-000010_analytics),
//! joined with the live capacity counters of `ticket_types` and the waitlist.
//! Sales are read from the live slots and the history the cleanup moves past
//! slots into (`analytics_history`).
//!
//! The time series is `analytics_series`.
//!
//! Every function takes a shared connection, so that a request can send them
//! all at once (diesel-async pipelines concurrent queries on one connection)
//! inside one read-only snapshot. Every function takes an optional event:
//! `Some` for one event's figures, `None` for the totals across every event
//! (admins). Amounts are minor units; money rows carry their currency.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::analytics_series::{SeriesBucket, SeriesRequest, series};

/// One ticket type: live capacity counters and what its tickets paid.
#[derive(Debug, Clone, QueryableByName)]
pub struct TicketTypeFigures {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub price_minor: i64,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Integer)]
    pub capacity: i32,
    #[diesel(sql_type = Integer)]
    pub sold: i32,
    #[diesel(sql_type = Integer)]
    pub held: i32,
    /// Units wanted by waitlist entries still waiting.
    #[diesel(sql_type = Integer)]
    pub waiting_units: i32,
    /// Tickets ever issued (refunded ones included).
    #[diesel(sql_type = BigInt)]
    pub issued: i64,
    /// What the issued tickets paid (their price less their share of the discount).
    #[diesel(sql_type = BigInt)]
    pub paid_minor: i64,
    #[diesel(sql_type = BigInt)]
    pub checked_in: i64,
    /// Tickets voided by a refund.
    #[diesel(sql_type = BigInt)]
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
    diesel::sql_query(
        "SELECT t.id, t.name, t.price_minor, t.currency, t.capacity, t.sold, t.held, t.waiting_units,
                t.tickets_issued AS issued, t.tickets_paid_minor AS paid_minor,
                t.tickets_checked_in AS checked_in, t.tickets_voided AS voided
           FROM ticket_types t
          WHERE $1::uuid IS NULL OR t.event_id = $1
          ORDER BY t.event_id, t.sort_order, t.id",
    )
    .bind::<Nullable<SqlUuid>, _>(event_id)
    .load(&mut conn)
    .await
}

/// Orders and money in one currency.
#[derive(Debug, Clone, Default, QueryableByName)]
pub struct MoneyFigures {
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub orders: i64,
    #[diesel(sql_type = BigInt)]
    pub tickets: i64,
    /// List price of the orders.
    #[diesel(sql_type = BigInt)]
    pub subtotal_minor: i64,
    #[diesel(sql_type = BigInt)]
    pub discount_minor: i64,
    /// What buyers paid: subtotal less discount.
    #[diesel(sql_type = BigInt)]
    pub paid_minor: i64,
    /// Refunds that succeeded.
    #[diesel(sql_type = BigInt)]
    pub refunds: i64,
    #[diesel(sql_type = BigInt)]
    pub refunded_minor: i64,
}

/// Sales and refunds per currency.
pub async fn money(
    mut conn: &AsyncPgConnection,
    event_id: Option<Uuid>,
) -> diesel::QueryResult<Vec<MoneyFigures>> {
    diesel::sql_query(
        "SELECT currency, sum(orders)::bigint AS orders, sum(tickets)::bigint AS tickets,
                sum(subtotal_minor)::bigint AS subtotal_minor, sum(discount_minor)::bigint AS discount_minor,
                sum(paid_minor)::bigint AS paid_minor, sum(refunds)::bigint AS refunds,
                sum(refunded_minor)::bigint AS refunded_minor
           FROM (SELECT currency, orders, tickets, subtotal_minor, discount_minor, paid_minor,
                        0 AS refunds, 0 AS refunded_minor
                   FROM analytics_sales_slots WHERE $1::uuid IS NULL OR event_id = $1
                 UNION ALL
                 SELECT currency, orders, tickets, subtotal_minor, discount_minor, paid_minor, 0, 0
                   FROM analytics_sales_history WHERE $1::uuid IS NULL OR event_id = $1
                 UNION ALL
                 SELECT currency, 0, 0, 0, 0, 0, refunds, refunded_minor
                   FROM analytics_refund_slots WHERE $1::uuid IS NULL OR event_id = $1) slots
          GROUP BY currency ORDER BY currency",
    )
    .bind::<Nullable<SqlUuid>, _>(event_id)
    .load(&mut conn)
    .await
}

/// Checkout runs by where they stand (see `analytics_checkout_outcome` in the migration).
#[derive(Debug, Clone, QueryableByName)]
pub struct OutcomeCount {
    #[diesel(sql_type = Text)]
    pub outcome: String,
    #[diesel(sql_type = BigInt)]
    pub runs: i64,
}

pub async fn checkout_outcomes(
    mut conn: &AsyncPgConnection,
    event_id: Option<Uuid>,
) -> diesel::QueryResult<Vec<OutcomeCount>> {
    diesel::sql_query(
        "SELECT outcome, sum(runs)::bigint AS runs FROM analytics_checkouts
          WHERE $1::uuid IS NULL OR event_id = $1
          GROUP BY outcome ORDER BY outcome",
    )
    .bind::<Nullable<SqlUuid>, _>(event_id)
    .load(&mut conn)
    .await
}

/// One coupon's orders and the discount they got.
#[derive(Debug, Clone, QueryableByName)]
pub struct CouponFigures {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub code: String,
    #[diesel(sql_type = BigInt)]
    pub uses: i64,
    #[diesel(sql_type = BigInt)]
    pub discount_minor: i64,
}

/// Every coupon of the event, by code (unused ones too).
pub async fn coupons(
    mut conn: &AsyncPgConnection,
    event_id: Uuid,
) -> diesel::QueryResult<Vec<CouponFigures>> {
    diesel::sql_query(
        "SELECT c.id, c.code, COALESCE(a.uses, 0) AS uses, COALESCE(a.discount_minor, 0) AS discount_minor
           FROM coupons c LEFT JOIN analytics_coupons a ON a.coupon_id = c.id
          WHERE c.event_id = $1
          ORDER BY lower(c.code)",
    )
    .bind::<SqlUuid, _>(event_id)
    .load(&mut conn)
    .await
}

/// Refunds that succeeded, by who asked and currency.
#[derive(Debug, Clone, QueryableByName)]
pub struct RefundFigures {
    #[diesel(sql_type = Text)]
    pub requested_by: String,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub refunds: i64,
    #[diesel(sql_type = BigInt)]
    pub refunded_minor: i64,
}

pub async fn refunds(
    mut conn: &AsyncPgConnection,
    event_id: Option<Uuid>,
) -> diesel::QueryResult<Vec<RefundFigures>> {
    diesel::sql_query(
        "SELECT requested_by, currency, sum(refunds)::bigint AS refunds,
                sum(refunded_minor)::bigint AS refunded_minor
           FROM analytics_refunds
          WHERE $1::uuid IS NULL OR event_id = $1
          GROUP BY requested_by, currency ORDER BY requested_by, currency",
    )
    .bind::<Nullable<SqlUuid>, _>(event_id)
    .load(&mut conn)
    .await
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

/// The time zone of the event's venue; `None` for an online event.
pub async fn event_timezone(
    mut conn: &AsyncPgConnection,
    event_id: Uuid,
) -> diesel::QueryResult<Option<String>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<Text>)]
        timezone: Option<String>,
    }
    let row: Option<Row> = diesel::sql_query(
        "SELECT v.timezone FROM events e LEFT JOIN venues v ON v.id = e.venue_id WHERE e.id = $1",
    )
    .bind::<SqlUuid, _>(event_id)
    .get_result(&mut conn)
    .await
    .map(Some)
    .or_else(|e| match e {
        diesel::result::Error::NotFound => Ok(None),
        e => Err(e),
    })?;
    Ok(row.and_then(|r| r.timezone))
}

/// Events with at least one ticket type (admins' totals).
pub async fn events_on_sale_count(mut conn: &AsyncPgConnection) -> diesel::QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: Row =
        diesel::sql_query("SELECT count(DISTINCT event_id)::bigint AS n FROM ticket_types")
            .get_result(&mut conn)
            .await?;
    Ok(row.n)
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
            let (ticket_types, money, checkout_outcomes, coupons, waitlist, refunds, series) = futures::try_join!(
                ticket_types(conn, event),
                money(conn, event),
                checkout_outcomes(conn, event),
                coupons(conn, event_id),
                waitlist(conn, event),
                refunds(conn, event),
                series(conn, event_id, r.timezone, r.granularity, r.from, r.to),
            )?;
            Ok(EventFigures {
                ticket_types,
                money,
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
            let (events, ticket_types, money, checkout_outcomes, waitlist, refunds) = futures::try_join!(
                events_on_sale_count(conn),
                ticket_types(conn, None),
                money(conn, None),
                checkout_outcomes(conn, None),
                waitlist(conn, None),
                refunds(conn, None),
            )?;
            Ok(AllFigures {
                events,
                ticket_types,
                money,
                checkout_outcomes,
                waitlist,
                refunds,
            })
        })
        .await
}
