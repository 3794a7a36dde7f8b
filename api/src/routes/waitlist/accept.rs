//! `POST /v1/waitlist/{entry_id}/accept`: take an offer, as a checkout that
//! adopts the offer's held tickets.

use axum::extract::State;
use axum::response::Response;
use boxoffice_models::events::{self, EventStatus};
use boxoffice_models::holds;
use boxoffice_models::waitlist;
use boxoffice_models::workflow_runs;
use boxoffice_models::workflow_signals::{self, NewSignal};
use boxoffice_workflows::checkout::{Checkout, CheckoutState, Item};
use boxoffice_workflows::waitlist_offer::SIGNAL_ACCEPTED;
use chrono::{Duration, Utc};
use diesel_async::AsyncConnection;
use uuid::Uuid;

use super::{not_found, offer_not_open};
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::Path;
use crate::idempotency_key::{self, IdempotencyKey};
use crate::middleware::request_id::RequestId;
use crate::runs::{self, RunStarted, Starter};
use crate::state::AppState;

/// Accepts an open offer: starts a checkout for the entry's tickets that
/// takes over the units the offer holds (no new hold: nobody can take them
/// in between), then proceeds as any checkout (payment, tickets, email),
/// with the event's hold minutes to pay. Accepting again, even concurrently
/// or with another key, answers with the same checkout. If the checkout is
/// not paid in time, its tickets go to the next entry of the waitlist.
#[utoipa::path(post, path = "/waitlist/{entry_id}/accept", tag = "waitlist",
    security(("bearer" = [])),
    params(("entry_id" = Uuid, Path, description = "The waitlist entry id"), IdempotencyKey),
    responses(
        (status = 202, description = "The checkout started (or was started before): poll it", body = RunStarted, headers(("ETag" = String, description = "The version of the run's status this answer shows, as `GET /v1/workflows/{id}` tags it: send it as `If-None-Match` with `?wait=` to hear of the next change"), ("Location" = String, description = "The run's status"))),
        (status = 400, description = idempotency_key::REQUIRED_RESPONSE, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such entry of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`offer_expired` (the deadline passed), `not_offered`, `entry_not_active`, `event_cancelled`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn accept_offer(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(entry_id): Path<Uuid>,
    request_id: Option<axum::Extension<RequestId>>,
    IdempotencyKey(key): IdempotencyKey,
) -> AppResult<Response> {
    let starter = Starter::new(
        auth.user_id,
        key,
        &("waitlist_accept", entry_id),
        request_id.map(|r| r.0.0.clone()),
    );
    let mut conn = state.conn().await?;
    // A retry is answered from its checkout before anything is checked again.
    if let Some(run) = runs::earlier::<Checkout>(&mut conn, &starter).await? {
        return runs::accepted(run);
    }
    let run = conn
        .transaction::<_, AppError, _>(async |conn| {
            // The offer run's row first, then the entry's, in the order its
            // own steps lock them (the signal below references the run row):
            // the other order deadlocks with the offer's email step. The
            // entry's lock orders concurrent accepts: the second finds it
            // accepted and answers with the same checkout.
            let locked_offer = waitlist::find(conn, entry_id)
                .await?
                .filter(|e| e.participant_id == auth.user_id)
                .ok_or_else(not_found)?
                .offer_run_id;
            if let Some(run_id) = locked_offer {
                workflow_runs::lock(conn, run_id).await?;
            }
            let entry = waitlist::lock(conn, entry_id)
                .await?
                .filter(|e| e.participant_id == auth.user_id)
                .ok_or_else(not_found)?;
            if entry.status == waitlist::ACCEPTED
                && let Some(checkout_id) = entry.checkout_run_id
            {
                return workflow_runs::find(conn, checkout_id)
                    .await?
                    .ok_or_else(not_found);
            }
            if entry.status != waitlist::OFFERED {
                return Err(offer_not_open(&entry));
            }
            let now = Utc::now();
            // Past the deadline the offer is over, even before its run wakes.
            if entry.offer_expires_at.is_none_or(|at| at <= now) {
                return Err(
                    AppError::conflict("offer_expired", "this offer has expired")
                        .with("expired_at", entry.offer_expires_at),
                );
            }
            // The offer run locked above is this entry's (an entry's offer run
            // never changes once set).
            let (Some(offer_run_id), Some(event)) = (
                entry.offer_run_id.filter(|id| Some(*id) == locked_offer),
                events::find(conn, entry.event_id).await?,
            ) else {
                return Err(offer_not_open(&entry));
            };
            if event.status == EventStatus::Cancelled {
                return Err(AppError::conflict(
                    "event_cancelled",
                    "the event was cancelled",
                ));
            }
            let hold_minutes = i64::from(event.hold_minutes);
            let mut checkout = CheckoutState::new(
                auth.user_id,
                entry.event_id,
                vec![Item {
                    ticket_type_id: entry.ticket_type_id,
                    quantity: entry.quantity,
                }],
                None,
                hold_minutes,
            );
            checkout.waitlist_entry_id = Some(entry.id);
            let (run, created) = runs::start::<Checkout>(conn, &starter, &checkout).await?;
            if !created {
                return Ok(run);
            }
            // The offer's units become the checkout's: `held` is unchanged.
            let moved = holds::move_to_run(
                conn,
                offer_run_id,
                run.id,
                now + Duration::minutes(hold_minutes),
            )
            .await?;
            if moved != entry.quantity {
                return Err(AppError::internal(anyhow::anyhow!(
                    "offer run {offer_run_id} held {moved} units for entry {} of {}",
                    entry.id,
                    entry.quantity
                )));
            }
            waitlist::mark_accepted(conn, entry.id, run.id).await?;
            workflow_signals::record(
                conn,
                NewSignal {
                    run_id: offer_run_id,
                    name: SIGNAL_ACCEPTED.into(),
                    dedupe_key: format!("waitlist:{}:accepted", entry.id),
                    payload: serde_json::json!({ "checkout_run_id": run.id }),
                },
            )
            .await?;
            metrics::counter!("waitlist_offers_accepted_total").increment(1);
            Ok(run)
        })
        .await?;
    runs::accepted(run)
}
