//! `GET /v1/ops/audit`: the ledger audit (`models::ledger_audit`), the same
//! checks as `boxoffice audit`, read in one read-only snapshot so it never
//! holds up a sale.

use axum::extract::State;
use boxoffice_models::ledger_audit::{self, Violation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::AdminUser;
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Query};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Audit this event only (every event when absent).
    pub event_id: Option<Uuid>,
}

/// The audit's verdict.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditReport {
    /// No violation found.
    pub clean: bool,
    pub violations: Vec<AuditViolation>,
}

/// One row that breaks one invariant of the books.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditViolation {
    /// Stable name, e.g. `ticket_type_held`, `booking_refunded`, `coupon_max_uses`.
    pub invariant: String,
    /// The table the row belongs to (`payment_intents` for an intent).
    pub table: String,
    /// The row's id (the provider's id for a payment intent).
    pub row_id: String,
    pub expected: String,
    pub found: String,
}

impl From<Violation> for AuditViolation {
    fn from(v: Violation) -> Self {
        AuditViolation {
            invariant: v.invariant,
            table: v.table,
            row_id: v.row_id,
            expected: v.expected,
            found: v.found,
        }
    }
}

/// Checks every invariant of the books: per ticket type sold, held, waiting
/// units and capacity; per booking what was paid and refunded and that
/// refunded tickets are void; per payment intent one checkout and refunds
/// within the charge; no hold of an ended run; one confirmation email per
/// booking; no coupon beyond its uses. 200 whether or not it is clean.
#[utoipa::path(get, path = "/ops/audit", tag = "operations",
    security(("bearer" = [])),
    params(AuditParams),
    responses(
        (status = 200, description = "The audit's verdict", body = AuditReport),
        (status = 400, description = "`invalid_query`: the event id is not a uuid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn audit(
    AdminUser(_admin): AdminUser,
    State(state): State<AppState>,
    Query(params): Query<AuditParams>,
) -> AppResult<Json<AuditReport>> {
    let mut conn = state.conn().await?;
    let violations = ledger_audit::audit(&mut conn, params.event_id).await?;
    Ok(Json(AuditReport {
        clean: violations.is_empty(),
        violations: violations.into_iter().map(AuditViolation::from).collect(),
    }))
}
