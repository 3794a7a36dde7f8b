//! `DELETE /v1/events/{id}/ticket-types/{ticket_type_id}`.

use axum::extract::State;
use axum::http::StatusCode;
use boxoffice_models::ticket_types::{self, DeleteOutcome};
use uuid::Uuid;

use super::refusal;
use crate::cache;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::Path;
use crate::routes::events::support::{Organizer, db_error, managed_event};
use crate::state::AppState;

/// Deletes a ticket type nobody has bought or holds, that no coupon is
/// restricted to, and that is not the last one of a published event.
#[utoipa::path(delete, path = "/events/{id}/ticket-types/{ticket_type_id}", tag = "ticket-types",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Event id"),
        ("ticket_type_id" = Uuid, Path, description = "Ticket type id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`ticket_type_has_sales` (with `sold`, `held`), `ticket_type_in_use` (with coupon `codes`), `last_ticket_type`, `event_not_editable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_ticket_type(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path((event_id, id)): Path<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    let mut conn = state.conn().await?;
    managed_event(&mut conn, &user, event_id).await?;
    match ticket_types::delete(&mut conn, event_id, id)
        .await
        .map_err(db_error)?
    {
        DeleteOutcome::Deleted(_) => {}
        DeleteOutcome::Refused(r) => return Err(refusal(r, "ticket type")),
        DeleteOutcome::HasWaitlist { entries } => {
            return Err(AppError::conflict(
                "ticket_type_has_waitlist",
                format!("{entries} waitlist entries belong to this type; it can't be deleted"),
            )
            .with("waitlist_entries", entries));
        }
        DeleteOutcome::HasSales { sold, held } => {
            return Err(AppError::conflict(
                "ticket_type_has_sales",
                format!(
                    "{sold} tickets of this type are sold and {held} held; it can't be deleted"
                ),
            )
            .with("sold", sold)
            .with("held", held));
        }
        DeleteOutcome::UsedByCoupons { codes } => {
            return Err(AppError::conflict(
                "ticket_type_in_use",
                "coupons are restricted to this ticket type; change them first",
            )
            .with("codes", codes));
        }
        DeleteOutcome::LastOfPublishedEvent => {
            return Err(AppError::conflict(
                "last_ticket_type",
                "a published event must keep at least one ticket type",
            ));
        }
    }
    drop(conn);
    cache::invalidate_event(&state, event_id).await;
    Ok(StatusCode::NO_CONTENT)
}
