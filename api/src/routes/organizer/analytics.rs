//! `GET /v1/organizer/events/{id}/analytics`: what an event sold, earned after
//! discounts and refunds, how its checkouts ended, how its coupons and waitlist
//! did, who came, and a time series in the venue's time zone.
//!
//! Read from counters that triggers keep in the transactions that write the
//! ledger (ops/DECISIONS.md, "Analytics"): exact at every commit, and a few
//! index reads whatever the event's size.

use axum::extract::State;
use boxoffice_models::analytics::{self, TicketTypeFigures};
use boxoffice_models::analytics_series::{Granularity, SeriesBucket, SeriesRequest};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::figures::{Funnel, Inventory, Money, Refunds, Waitlist};
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path, Query};
use crate::routes::events::support::{Organizer, managed_event};
use crate::state::AppState;

/// The time zone of an online event's figures (it has no venue).
pub const ONLINE_TIMEZONE: &str = "UTC";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GranularityView {
    Hour,
    #[default]
    Day,
}

impl From<GranularityView> for Granularity {
    fn from(g: GranularityView) -> Self {
        match g {
            GranularityView::Hour => Granularity::Hour,
            GranularityView::Day => Granularity::Day,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsParams {
    /// The time series starts with the first bucket starting at or after this
    /// instant (RFC 3339; default: the first sale).
    pub from: Option<DateTime<Utc>>,
    /// The time series ends before the bucket starting at this instant (default: none).
    pub to: Option<DateTime<Utc>>,
    /// Buckets of the time series: `hour` or `day` (default), on the venue's clock.
    pub granularity: Option<GranularityView>,
}

/// One ticket type's figures.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TicketTypeAnalytics {
    pub id: Uuid,
    pub name: String,
    /// Today's price.
    pub price_minor: i64,
    pub capacity: i32,
    pub sold: i32,
    pub held: i32,
    pub available: i32,
    pub waiting_units: i32,
    pub checked_in: i64,
    /// Tickets ever issued, refunded ones included.
    pub tickets_issued: i64,
    /// Tickets voided by a refund.
    pub tickets_refunded: i64,
    /// What the issued tickets paid: price less their share of the discount.
    pub paid_minor: i64,
}

impl From<&TicketTypeFigures> for TicketTypeAnalytics {
    fn from(t: &TicketTypeFigures) -> Self {
        TicketTypeAnalytics {
            id: t.id,
            name: t.name.clone(),
            price_minor: t.price_minor,
            capacity: t.capacity,
            sold: t.sold,
            held: t.held,
            available: t.available(),
            waiting_units: t.waiting_units,
            checked_in: t.checked_in,
            tickets_issued: t.issued,
            tickets_refunded: t.voided,
            paid_minor: t.paid_minor,
        }
    }
}

/// One coupon code's orders and the discount they got.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CouponUse {
    pub coupon_id: Uuid,
    pub code: String,
    pub uses: i64,
    pub discount_minor: i64,
}

/// One bucket of the time series: sales at their booking's time, refunds at their success.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SeriesPoint {
    /// The bucket's first instant (UTC).
    pub start: DateTime<Utc>,
    /// The same instant on the venue's clock, with its offset (e.g.
    /// `2026-10-25T02:00:00+01:00`, the second 02:00 of the night the clocks go back).
    pub local_start: String,
    pub orders: i64,
    pub tickets: i64,
    /// What those orders paid.
    pub revenue_minor: i64,
    pub refunds: i64,
    pub refunds_minor: i64,
}

impl From<&SeriesBucket> for SeriesPoint {
    fn from(b: &SeriesBucket) -> Self {
        let offset_secs = (b.local_start - b.start.naive_utc()).num_seconds();
        let local_start = i32::try_from(offset_secs)
            .ok()
            .and_then(FixedOffset::east_opt)
            .map_or_else(
                || b.start.to_rfc3339(),
                |offset| b.start.with_timezone(&offset).to_rfc3339(),
            );
        SeriesPoint {
            start: b.start,
            local_start,
            orders: b.orders,
            tickets: b.tickets,
            revenue_minor: b.paid_minor,
            refunds: b.refunds,
            refunds_minor: b.refunded_minor,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventAnalytics {
    pub event_id: Uuid,
    /// The event's currency; every amount is in its minor units.
    pub currency: Option<String>,
    /// The venue's time zone (`UTC` for an online event), of the time series.
    pub timezone: String,
    pub granularity: GranularityView,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub ticket_types: Vec<TicketTypeAnalytics>,
    pub totals: Inventory,
    pub money: Money,
    pub funnel: Funnel,
    pub coupons: Vec<CouponUse>,
    pub waitlist: Waitlist,
    pub refunds: Refunds,
    pub series: Vec<SeriesPoint>,
}

/// Figures of an event you organize (any event, for admins), exact to the
/// ledger: capacity, sold, held, available and checked in per ticket type;
/// gross, discounts, refunds and net from what was paid; the checkout funnel;
/// coupon uses; the waitlist; refunds by requester; and a time series of
/// sales, revenue and refunds in the venue's time zone (buckets with activity only).
#[utoipa::path(get, path = "/organizer/events/{id}/analytics", tag = "organizer",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id"), AnalyticsParams),
    responses(
        (status = 200, description = "The event's figures", body = EventAnalytics),
        (status = 400, description = "`invalid_path`, `invalid_query`, `invalid_range` (`from` not before `to`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn event_analytics(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
    Query(params): Query<AnalyticsParams>,
) -> AppResult<Json<EventAnalytics>> {
    if let (Some(from), Some(to)) = (params.from, params.to)
        && from >= to
    {
        return Err(AppError::bad_request(
            "invalid_range",
            "`from` must be before `to`",
        ));
    }
    let granularity = params.granularity.unwrap_or_default();
    let mut conn = state.conn().await?;
    let event = managed_event(&mut conn, &user, event_id).await?;
    let timezone = analytics::event_timezone(&conn, event_id)
        .await?
        .unwrap_or_else(|| ONLINE_TIMEZONE.to_owned());

    let analytics::EventFigures {
        ticket_types: types,
        money: money_rows,
        checkout_outcomes: outcomes,
        coupons,
        waitlist,
        refunds,
        series,
    } = analytics::event_figures(
        &mut conn,
        event_id,
        &SeriesRequest {
            timezone: &timezone,
            granularity: granularity.into(),
            from: params.from,
            to: params.to,
        },
    )
    .await?;

    // One event sells in one currency: its own, else the one it sold in.
    let currency = event
        .currency
        .clone()
        .or_else(|| money_rows.first().map(|m| m.currency.clone()))
        .unwrap_or_default();
    let money = money_rows
        .iter()
        .find(|m| m.currency == currency)
        .map(Money::from)
        .unwrap_or_else(|| Money {
            currency: currency.clone(),
            ..Money::default()
        });
    Ok(Json(EventAnalytics {
        event_id,
        currency: event.currency,
        timezone,
        granularity,
        from: params.from,
        to: params.to,
        totals: Inventory::of(&types),
        ticket_types: types.iter().map(TicketTypeAnalytics::from).collect(),
        money,
        funnel: Funnel::of(&outcomes),
        coupons: coupons
            .into_iter()
            .map(|c| CouponUse {
                coupon_id: c.id,
                code: c.code,
                uses: c.uses,
                discount_minor: c.discount_minor,
            })
            .collect(),
        waitlist: Waitlist::of(&waitlist),
        refunds: Refunds::of(&currency, &refunds),
        series: series.iter().map(SeriesPoint::from).collect(),
    }))
}
