//! `POST /v1/waitlist/{entry_id}/decline`: turn an offer down.

use axum::extract::State;
use axum::http::StatusCode;
use boxoffice_models::waitlist;
use boxoffice_models::workflow_signals::{self, NewSignal};
use boxoffice_workflows::waitlist_offer::SIGNAL_DECLINED;
use chrono::Utc;
use uuid::Uuid;

use super::{offer_not_open, own_entry};
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::Path;
use crate::state::AppState;

/// Declines an open offer: its tickets go to the next entry (or back on sale
/// when nobody waits). Answered at once; the offer run releases them.
/// Declining twice is harmless.
#[utoipa::path(post, path = "/waitlist/{entry_id}/decline", tag = "waitlist",
    security(("bearer" = [])),
    params(("entry_id" = Uuid, Path, description = "The waitlist entry id")),
    responses(
        (status = 202, description = "Declined: the tickets are being released"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such entry of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_offered`, `offer_accepted`, `offer_expired`, `entry_not_active`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn decline_offer(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(entry_id): Path<Uuid>,
) -> AppResult<StatusCode> {
    let mut conn = state.conn().await?;
    let entry = own_entry(&mut conn, entry_id, auth.user_id).await?;
    if entry.status != waitlist::OFFERED {
        return Err(offer_not_open(&entry));
    }
    if entry.offer_expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(AppError::conflict(
            "offer_expired",
            "this offer has expired",
        ));
    }
    let Some(run_id) = entry.offer_run_id else {
        return Err(offer_not_open(&entry));
    };
    workflow_signals::record(
        &mut conn,
        NewSignal {
            run_id,
            name: SIGNAL_DECLINED.into(),
            dedupe_key: format!("waitlist:{}:declined", entry.id),
            payload: serde_json::json!({ "entry_id": entry.id }),
        },
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}
