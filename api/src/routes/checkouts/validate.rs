//! Everything a checkout request must satisfy before a run starts: checked here
//! so bad requests fail fast with a 4xx and no run, no hold, nothing to undo.
//! Capacity is not checked here: only the hold, under the row lock, decides.

use std::collections::HashSet;

use axum::http::StatusCode;
use boxoffice_models::events::EventStatus;
use boxoffice_workflows::checkout::Item;
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;

use super::sale_terms::{self, SaleTerms};
use super::start::CheckoutRequest;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The most lines one order may have.
const MAX_LINES: usize = 20;
const MAX_COUPON_LEN: usize = 64;

/// The request, checked: the items and the event's hold minutes.
pub struct ValidCheckout {
    pub items: Vec<Item>,
    pub hold_minutes: i64,
    pub coupon_code: Option<String>,
    /// The event's limit per participant, checked when the run starts (under
    /// the participant's lock, see `start`).
    pub max_tickets_per_participant: Option<i32>,
}

pub async fn validate(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    req: &CheckoutRequest,
    now: DateTime<Utc>,
) -> AppResult<ValidCheckout> {
    let coupon_code = check_order(req)?;
    let event = sale_terms::of_event(state, conn, req.event_id)
        .await?
        .ok_or_else(|| AppError::not_found("event"))?;
    check_terms(&event, req, coupon_code, now)
}

/// [`validate`] against terms already in memory (`sale_terms::kept_or_read`): the
/// same checks, in the same order, without a connection.
pub fn validate_kept(
    event: &SaleTerms,
    req: &CheckoutRequest,
    now: DateTime<Utc>,
) -> AppResult<ValidCheckout> {
    let coupon_code = check_order(req)?;
    check_terms(event, req, coupon_code, now)
}

/// What the order must be whatever the event: its lines and its coupon's
/// length. The coupon's code, trimmed, when one was given.
fn check_order(req: &CheckoutRequest) -> AppResult<Option<String>> {
    if req.items.is_empty() {
        return Err(AppError::validation(
            "items",
            "at least one item is required",
        ));
    }
    if req.items.len() > MAX_LINES {
        return Err(AppError::validation(
            "items",
            format!("at most {MAX_LINES} lines per order"),
        ));
    }
    let mut seen = HashSet::new();
    for item in &req.items {
        if !seen.insert(item.ticket_type_id) {
            return Err(AppError::validation(
                "items",
                "each ticket type may appear once",
            ));
        }
        if item.quantity < 1 {
            return Err(AppError::validation(
                "items.quantity",
                "quantities start at 1",
            ));
        }
    }
    let coupon_code = match req.coupon_code.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(code) if code.len() > MAX_COUPON_LEN => {
            return Err(AppError::validation(
                "coupon_code",
                format!("at most {MAX_COUPON_LEN} characters"),
            ));
        }
        Some(code) => Some(code.to_owned()),
    };
    Ok(coupon_code)
}

/// What the order must be for this event's sale, at `now`.
fn check_terms(
    event: &SaleTerms,
    req: &CheckoutRequest,
    coupon_code: Option<String>,
    now: DateTime<Utc>,
) -> AppResult<ValidCheckout> {
    if event.status == EventStatus::Cancelled {
        return Err(AppError::conflict(
            "event_cancelled",
            "the event was cancelled",
        ));
    }
    if event.status != EventStatus::Published {
        return Err(AppError::conflict(
            "event_not_on_sale",
            "the event is not on sale",
        ));
    }
    if event.ends_at <= now {
        return Err(AppError::conflict("event_over", "the event is over"));
    }
    check_window(event.sales_start_at, event.sales_end_at, now, "event")?;
    let total: i64 = req.items.iter().map(|i| i64::from(i.quantity)).sum();
    if total > i64::from(event.max_tickets_per_order) {
        return Err(AppError::validation(
            "items",
            format!("at most {} tickets per order", event.max_tickets_per_order),
        )
        .with("max_tickets_per_order", event.max_tickets_per_order));
    }

    for item in &req.items {
        let Some(tt) = event
            .ticket_types
            .iter()
            .find(|t| t.id == item.ticket_type_id)
        else {
            return Err(AppError::validation(
                "items.ticket_type_id",
                "not a ticket type of this event",
            )
            .with("ticket_type_id", item.ticket_type_id));
        };
        check_window(tt.sales_start_at, tt.sales_end_at, now, "ticket type")?;
        if let Some(max) = tt.max_per_order
            && item.quantity > max
        {
            return Err(AppError::validation(
                "items.quantity",
                format!("at most {max} of {} per order", tt.name),
            )
            .with("ticket_type_id", tt.id)
            .with("max_per_order", max));
        }
    }
    Ok(ValidCheckout {
        items: req
            .items
            .iter()
            .map(|i| Item {
                ticket_type_id: i.ticket_type_id,
                quantity: i.quantity,
            })
            .collect(),
        hold_minutes: i64::from(event.hold_minutes),
        coupon_code,
        max_tickets_per_participant: event.max_tickets_per_participant,
    })
}

fn check_window(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    what: &str,
) -> AppResult<()> {
    if start.is_some_and(|s| now < s) {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            "sales_not_started",
            format!("sales of this {what} have not started"),
        )
        .with("sales_start_at", start));
    }
    if end.is_some_and(|e| now >= e) {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            "sales_ended",
            format!("sales of this {what} have ended"),
        ));
    }
    Ok(())
}
