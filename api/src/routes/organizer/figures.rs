//! The figures of the analytics responses, shared by an event's analytics and
//! the admins' totals: built from the rows of `boxoffice_models::analytics`.

use boxoffice_models::analytics::{
    MoneyFigures, OutcomeCount, RefundFigures, TicketTypeFigures, WaitlistFigures,
};
use serde::Serialize;

/// Capacity and tickets, summed over ticket types.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Inventory {
    pub capacity: i64,
    /// Units sold (refunded units are on sale again and not counted).
    pub sold: i64,
    /// Units in open checkouts and waitlist offers.
    pub held: i64,
    /// Units the public sale may still take.
    pub available: i64,
    /// Units wanted by waitlist entries still waiting.
    pub waiting_units: i64,
    pub checked_in: i64,
    /// Tickets ever issued, refunded ones included.
    pub tickets_issued: i64,
    /// Tickets voided by a refund.
    pub tickets_refunded: i64,
}

impl Inventory {
    pub fn of(types: &[TicketTypeFigures]) -> Self {
        types.iter().fold(Inventory::default(), |sum, t| Inventory {
            capacity: sum.capacity + i64::from(t.capacity),
            sold: sum.sold + i64::from(t.sold),
            held: sum.held + i64::from(t.held),
            available: sum.available + i64::from(t.available()),
            waiting_units: sum.waiting_units + i64::from(t.waiting_units),
            checked_in: sum.checked_in + t.checked_in,
            tickets_issued: sum.tickets_issued + t.issued,
            tickets_refunded: sum.tickets_refunded + t.voided,
        })
    }
}

/// Money from what was actually paid, in minor units of `currency`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Money {
    pub currency: String,
    /// Orders (bookings).
    pub orders: i64,
    /// The orders at list price.
    pub gross_minor: i64,
    /// What coupons took off.
    pub discounts_minor: i64,
    /// What buyers paid: gross less discounts.
    pub paid_minor: i64,
    /// Given back by refunds that succeeded (goodwill sums included).
    pub refunds_minor: i64,
    /// Paid less refunds.
    pub net_minor: i64,
    /// Paid per order, rounded half up (0 without orders).
    pub average_order_value_minor: i64,
}

impl From<&MoneyFigures> for Money {
    fn from(m: &MoneyFigures) -> Self {
        Money {
            currency: m.currency.clone(),
            orders: m.orders,
            gross_minor: m.subtotal_minor,
            discounts_minor: m.discount_minor,
            paid_minor: m.paid_minor,
            refunds_minor: m.refunded_minor,
            net_minor: m.paid_minor - m.refunded_minor,
            average_order_value_minor: rounded_ratio(m.paid_minor, m.orders),
        }
    }
}

/// `n / d` rounded half up, for non-negative `n`; 0 when `d` is 0.
pub fn rounded_ratio(n: i64, d: i64) -> i64 {
    if d <= 0 { 0 } else { (2 * n + d) / (2 * d) }
}

/// `part / whole` (0 when `whole` is 0).
pub fn share(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Checkouts by how they ended; every started checkout is in exactly one of
/// `completed`, `in_progress`, `sold_out`, `payment_declined`,
/// `expired_unpaid`, `cancelled`, `other`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Funnel {
    pub started: i64,
    pub completed: i64,
    /// Not finished yet (holding seats, waiting for payment, letting go).
    pub in_progress: i64,
    /// Refused at the hold: no capacity left.
    pub sold_out: i64,
    /// Ended unpaid after at least one declined card.
    pub payment_declined: i64,
    /// Ended unpaid at the hold's deadline, no card declined.
    pub expired_unpaid: i64,
    /// Cancelled by the buyer or an operator.
    pub cancelled: i64,
    /// Ended otherwise: coupon refused, payment provider unavailable, event cancelled, ...
    pub other: i64,
    /// `completed / started` (0 without checkouts).
    pub conversion: f64,
}

impl Funnel {
    pub fn of(rows: &[OutcomeCount]) -> Self {
        let n = |outcome: &str| {
            rows.iter()
                .filter(|r| r.outcome == outcome)
                .map(|r| r.runs)
                .sum::<i64>()
        };
        let started = rows.iter().map(|r| r.runs).sum::<i64>();
        let completed = n("completed");
        Funnel {
            started,
            completed,
            in_progress: n("in_progress"),
            sold_out: n("sold_out"),
            payment_declined: n("payment_declined"),
            expired_unpaid: n("expired_unpaid"),
            cancelled: n("cancelled"),
            other: n("other"),
            conversion: share(completed, started),
        }
    }
}

/// Refunds that succeeded, asked by one kind of requester.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RefundGroup {
    pub count: i64,
    pub amount_minor: i64,
}

/// Refunds that succeeded, in minor units of `currency`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Refunds {
    pub currency: String,
    pub count: i64,
    pub amount_minor: i64,
    pub by_buyer: RefundGroup,
    pub by_organizer: RefundGroup,
    pub by_admin: RefundGroup,
    /// Refunds of the event's cancellation.
    pub by_event_cancellation: RefundGroup,
}

impl Refunds {
    /// The refunds of one currency.
    pub fn of(currency: &str, rows: &[RefundFigures]) -> Self {
        let group = |who: &str| {
            rows.iter()
                .filter(|r| r.currency == currency && r.requested_by == who)
                .fold(RefundGroup::default(), |g, r| RefundGroup {
                    count: g.count + r.refunds,
                    amount_minor: g.amount_minor + r.refunded_minor,
                })
        };
        let (by_buyer, by_organizer, by_admin, by_event_cancellation) = (
            group("buyer"),
            group("organizer"),
            group("admin"),
            group("event_cancellation"),
        );
        let groups = [&by_buyer, &by_organizer, &by_admin, &by_event_cancellation];
        Refunds {
            currency: currency.to_owned(),
            count: groups.iter().map(|g| g.count).sum(),
            amount_minor: groups.iter().map(|g| g.amount_minor).sum(),
            by_buyer,
            by_organizer,
            by_admin,
            by_event_cancellation,
        }
    }
}

/// An amount with its currency.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Amount {
    pub currency: String,
    pub minor: i64,
}

/// The waitlist: entries by what became of them, and the demand still waiting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Waitlist {
    /// Entries ever made.
    pub joined: i64,
    pub waiting: i64,
    /// Entries offered units (whatever became of the offer).
    pub offered: i64,
    pub accepted: i64,
    pub expired: i64,
    pub declined: i64,
    pub left: i64,
    /// Offers whose checkout completed.
    pub offers_sold: i64,
    /// `offers_sold / offered` (0 without offers).
    pub offer_conversion: f64,
    /// Units wanted by the entries still waiting.
    pub waiting_units: i64,
    /// What those units would bring at today's prices, per currency, if
    /// capacity were raised for them.
    pub waiting_value: Vec<Amount>,
}

impl Waitlist {
    pub fn of(rows: &[WaitlistFigures]) -> Self {
        let sum = |f: fn(&WaitlistFigures) -> i64| rows.iter().map(f).sum::<i64>();
        let (offered, offers_sold) = (sum(|r| r.offered), sum(|r| r.offers_sold));
        Waitlist {
            joined: sum(|r| r.joined),
            waiting: sum(|r| r.waiting),
            offered,
            accepted: sum(|r| r.accepted),
            expired: sum(|r| r.expired),
            declined: sum(|r| r.declined),
            left: sum(|r| r.left),
            offers_sold,
            offer_conversion: share(offers_sold, offered),
            waiting_units: sum(|r| r.waiting_units),
            waiting_value: rows
                .iter()
                .map(|r| Amount {
                    currency: r.currency.clone(),
                    minor: r.waiting_value_minor,
                })
                .collect(),
        }
    }
}
