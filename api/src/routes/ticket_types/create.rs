//! `POST /v1/events/{id}/ticket-types`: add a ticket type to an event.

use axum::extract::State;
use axum::http::StatusCode;
use boxoffice_models::ticket_types::{self, CreateOutcome, NewTicketType};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{TicketTypeView, refusal};
use crate::cache;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::routes::events::Audience;
use crate::routes::events::support::{self, Organizer, db_error, managed_event};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTicketTypeRequest {
    #[schema(example = "General admission", max_length = 100)]
    pub name: String,
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// Minor units, 0 (free) to 10^12.
    #[schema(example = 4500, minimum = 0)]
    pub price_minor: i64,
    /// ISO 4217; must be the event's currency. Optional once the event has one;
    /// the first ticket type of an event without one fixes it.
    #[schema(example = "EUR")]
    pub currency: Option<String>,
    #[schema(example = 200, minimum = 0, maximum = 1000000)]
    pub capacity: i32,
    /// 1 to 100; default: the event's `max_tickets_per_order`.
    pub max_per_order: Option<i32>,
    pub sales_start_at: Option<DateTime<Utc>>,
    pub sales_end_at: Option<DateTime<Utc>>,
    /// Display order (ascending), default 0.
    pub sort_order: Option<i32>,
}

/// Adds a ticket type to an event that is a draft or published.
#[utoipa::path(post, path = "/events/{id}/ticket-types", tag = "ticket-types",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id")),
    request_body = CreateTicketTypeRequest,
    responses(
        (status = 201, description = "The new ticket type", body = TicketTypeView),
        (status = 400, description = "`invalid_path`, `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`event_not_editable`, `duplicate_ticket_type_name`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (e.g. `currency` is not the event's), `invalid_body`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_ticket_type(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
    Json(body): Json<CreateTicketTypeRequest>,
) -> AppResult<(StatusCode, Json<TicketTypeView>)> {
    let name = super::name(&body.name)?;
    let description = super::description(body.description.as_deref().unwrap_or(""))?;
    let price_minor = super::price(body.price_minor)?;
    let capacity = super::capacity(body.capacity)?;
    let max_per_order = body.max_per_order.map(super::max_per_order).transpose()?;
    let sales_start_at = support::maybe_timestamp("sales_start_at", body.sales_start_at)?;
    let sales_end_at = support::maybe_timestamp("sales_end_at", body.sales_end_at)?;
    support::ordered(
        "sales_end_at",
        sales_start_at,
        sales_end_at,
        "sales_end_at must be after sales_start_at",
    )?;
    let sort_order = super::sort_order(body.sort_order.unwrap_or(0))?;
    let requested_currency = body
        .currency
        .as_deref()
        .map(|c| support::currency("currency", c))
        .transpose()?;

    let mut conn = state.conn().await?;
    let event = managed_event(&mut conn, &user, event_id).await?;
    let Some(currency) = requested_currency.or(event.currency) else {
        return Err(AppError::validation(
            "currency",
            "the event has no currency yet: give this ticket type's currency",
        ));
    };
    let new = NewTicketType {
        id: Uuid::now_v7(),
        event_id,
        name,
        description,
        price_minor,
        currency,
        capacity,
        max_per_order,
        sales_start_at,
        sales_end_at,
        sort_order,
    };
    let created = match ticket_types::create(&mut conn, &new)
        .await
        .map_err(db_error)?
    {
        CreateOutcome::Created(created) => created,
        CreateOutcome::Refused(r) => return Err(refusal(r, "ticket type")),
        CreateOutcome::CurrencyMismatch { event_currency } => {
            return Err(AppError::validation(
                "currency",
                format!("every price of this event is in {event_currency}"),
            )
            .with("event_currency", event_currency));
        }
    };
    drop(conn);
    cache::invalidate_event(&state, event_id).await;
    Ok((
        StatusCode::CREATED,
        Json(TicketTypeView::new(&created, Audience::Manager)),
    ))
}
