//! `DELETE /v1/waitlist/{entry_id}`: leave a waitlist.

use axum::extract::State;
use axum::http::StatusCode;
use boxoffice_models::waitlist::{self, Left};
use boxoffice_models::workflow_signals::{self, NewSignal};
use boxoffice_workflows::waitlist_offer::SIGNAL_LEFT;
use uuid::Uuid;

use super::{not_found, offer_not_open};
use crate::auth::AuthUser;
use crate::error::{AppResult, Problem};
use crate::extract::Path;
use crate::state::AppState;

/// Leaves the waitlist. A waiting entry leaves at once (`204`); an entry
/// holding an offer gives its tickets back to the next entry (`202`: its
/// offer run releases them).
#[utoipa::path(delete, path = "/waitlist/{entry_id}", tag = "waitlist",
    security(("bearer" = [])),
    params(("entry_id" = Uuid, Path, description = "The waitlist entry id")),
    responses(
        (status = 202, description = "Left while offered: the offer's tickets are being released"),
        (status = 204, description = "Left"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such entry of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`offer_accepted`, `offer_expired`, `entry_not_active`: the entry is no longer on the waitlist", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn leave_waitlist(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(entry_id): Path<Uuid>,
) -> AppResult<StatusCode> {
    let mut conn = state.conn().await?;
    match waitlist::leave(&mut conn, entry_id, auth.user_id).await? {
        None => Err(not_found()),
        Some(Left::Left(_)) => Ok(StatusCode::NO_CONTENT),
        Some(Left::Offered(entry)) => {
            let run_id = entry.offer_run_id.ok_or_else(not_found)?;
            workflow_signals::record(
                &mut conn,
                NewSignal {
                    run_id,
                    name: SIGNAL_LEFT.into(),
                    dedupe_key: format!("waitlist:{}:left", entry.id),
                    payload: serde_json::json!({ "entry_id": entry.id }),
                },
            )
            .await?;
            Ok(StatusCode::ACCEPTED)
        }
        Some(Left::NotActive(entry)) => Err(offer_not_open(&entry)),
    }
}
