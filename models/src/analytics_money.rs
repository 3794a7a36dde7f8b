//! Money figures of the organizer analytics: sales from the live slots and
//! the sales history's per-event totals, refunds from the per-requester
//! counters the figures already read (`analytics::refunds`).

use std::collections::BTreeMap;

use diesel::dsl::sum;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::analytics::{RefundFigures, int8};
use crate::schema::{analytics_sales_history_totals, analytics_sales_slots};

/// Orders and money in one currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoneyFigures {
    pub currency: String,
    pub orders: i64,
    pub tickets: i64,
    /// List price of the orders.
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    /// What buyers paid: subtotal less discount.
    pub paid_minor: i64,
    /// Refunds that succeeded.
    pub refunds: i64,
    pub refunded_minor: i64,
}

/// Sales counters as the live slots and the history's totals keep them:
/// currency, orders, tickets, subtotal, discount, paid.
type SalesRow = (String, i64, i64, i64, i64, i64);
/// The same summed over the live slots' shards (a sum of no rows is null).
type SalesSums = (
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// Sales per currency, by currency (their refunds still 0): the live slots
/// (the last hour or so once the cleanup has moved the past ones) and the
/// history's per-event totals.
pub async fn sales(
    conn: &AsyncPgConnection,
    event_id: Option<Uuid>,
) -> diesel::QueryResult<Vec<MoneyFigures>> {
    use analytics_sales_history_totals as moved;
    use analytics_sales_slots as live;
    let live = async {
        let mut conn = conn;
        let mut query = live::table
            .group_by(live::currency)
            .select((
                live::currency,
                int8(sum(live::orders)),
                int8(sum(live::tickets)),
                int8(sum(live::subtotal_minor)),
                int8(sum(live::discount_minor)),
                int8(sum(live::paid_minor)),
            ))
            .into_boxed();
        if let Some(event_id) = event_id {
            query = query.filter(live::event_id.eq(event_id));
        }
        let rows: Vec<SalesSums> = query.load(&mut conn).await?;
        Ok(rows
            .into_iter()
            .map(|(currency, orders, tickets, subtotal, discount, paid)| {
                let n = |v: Option<i64>| v.unwrap_or(0);
                (
                    currency,
                    n(orders),
                    n(tickets),
                    n(subtotal),
                    n(discount),
                    n(paid),
                )
            })
            .collect::<Vec<SalesRow>>())
    };
    let moved = async {
        let mut conn = conn;
        let mut query = moved::table
            .select((
                moved::currency,
                moved::orders,
                moved::tickets,
                moved::subtotal_minor,
                moved::discount_minor,
                moved::paid_minor,
            ))
            .into_boxed();
        if let Some(event_id) = event_id {
            query = query.filter(moved::event_id.eq(event_id));
        }
        query.load::<SalesRow>(&mut conn).await
    };
    let (live, moved) = futures::try_join!(live, moved)?;
    let mut by_currency: BTreeMap<String, MoneyFigures> = BTreeMap::new();
    for (currency, orders, tickets, subtotal, discount, paid) in live.into_iter().chain(moved) {
        let m = entry(&mut by_currency, currency);
        m.orders += orders;
        m.tickets += tickets;
        m.subtotal_minor += subtotal;
        m.discount_minor += discount;
        m.paid_minor += paid;
    }
    Ok(by_currency.into_values().collect())
}

/// `sales` with the refunds that succeeded added per currency (refund rows
/// by requester and currency, as `analytics::refunds` reads them).
pub fn with_refunds(sales: Vec<MoneyFigures>, refunds: &[RefundFigures]) -> Vec<MoneyFigures> {
    let mut by_currency: BTreeMap<String, MoneyFigures> =
        sales.into_iter().map(|m| (m.currency.clone(), m)).collect();
    for r in refunds {
        let m = entry(&mut by_currency, r.currency.clone());
        m.refunds += r.refunds;
        m.refunded_minor += r.refunded_minor;
    }
    by_currency.into_values().collect()
}

fn entry(by_currency: &mut BTreeMap<String, MoneyFigures>, currency: String) -> &mut MoneyFigures {
    by_currency
        .entry(currency.clone())
        .or_insert_with(|| MoneyFigures {
            currency,
            ..MoneyFigures::default()
        })
}
