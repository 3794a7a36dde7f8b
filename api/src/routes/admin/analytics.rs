//! `GET /v1/admin/analytics`: the organizers' figures summed over every event,
//! money per currency. Read from the same counters as an event's analytics.

use axum::extract::State;
use boxoffice_models::analytics;
use serde::Serialize;

use crate::auth::AdminUser;
use crate::error::{AppResult, Problem};
use crate::extract::Json;
use crate::routes::organizer::figures::{Funnel, Inventory, Money, Refunds, Waitlist};
use crate::state::AppState;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AdminAnalytics {
    /// Events with at least one ticket type.
    pub events: i64,
    pub totals: Inventory,
    /// Money per currency, from what was paid.
    pub money: Vec<Money>,
    pub funnel: Funnel,
    pub waitlist: Waitlist,
    /// Refunds per currency, by requester.
    pub refunds: Vec<Refunds>,
}

/// Totals across every event: capacity, sold, held, available and checked in;
/// money and refunds per currency; the checkout funnel; the waitlist.
#[utoipa::path(get, path = "/admin/analytics", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Totals across every event", body = AdminAnalytics),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn admin_analytics(
    AdminUser(_admin): AdminUser,
    State(state): State<AppState>,
) -> AppResult<Json<AdminAnalytics>> {
    let mut conn = state.conn().await?;
    let analytics::AllFigures {
        events,
        ticket_types: types,
        money,
        checkout_outcomes: outcomes,
        waitlist,
        refunds,
    } = analytics::all_figures(&mut conn).await?;

    let mut currencies: Vec<&str> = money
        .iter()
        .map(|m| m.currency.as_str())
        .chain(refunds.iter().map(|r| r.currency.as_str()))
        .collect();
    currencies.sort_unstable();
    currencies.dedup();
    Ok(Json(AdminAnalytics {
        events,
        totals: Inventory::of(&types),
        money: money.iter().map(Money::from).collect(),
        funnel: Funnel::of(&outcomes),
        waitlist: Waitlist::of(&waitlist),
        refunds: currencies
            .iter()
            .map(|c| Refunds::of(c, &refunds))
            .collect(),
    }))
}
