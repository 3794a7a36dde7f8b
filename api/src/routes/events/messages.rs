//! `/v1/events/{id}/messages`: an organizer's messages to the holders of the
//! event's tickets.
//!
//! A message is an `organizer_message` run that waits for `send_at` and then
//! emails every participant holding a valid ticket who has not turned
//! organizers' messages off, in batches (see `workflows::reminder`). The
//! organizer of the event and admins only: anybody else's event is a 404.
//! Subject and body are plain text, sent as such (never as markup).

use axum::extract::State;
use axum::http::StatusCode;
use boxoffice_models::events::EventStatus;
use boxoffice_models::reminders::{self, MessageProgress, NewMessage};
use boxoffice_models::workflow_runs;
use boxoffice_workflows::engine::RunStatus;
use boxoffice_workflows::reminder::{MailingState, OrganizerMessage};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::support::{self, Organizer, managed_event};
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::idempotency_key::{self, IdempotencyKey};
use crate::runs::{self, Starter};
use crate::state::AppState;

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    /// One line, 1 to 200 characters.
    #[schema(max_length = 200)]
    pub subject: String,
    /// Plain text, 1 to 20000 characters.
    #[schema(max_length = 20000)]
    pub body: String,
    /// When to send it; now when absent (or past).
    pub send_at: Option<DateTime<Utc>>,
}

/// A message and how far it went.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    pub subject: String,
    pub body: String,
    pub send_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// `scheduled`, `sending`, `sent` or `cancelled`.
    pub status: String,
    /// Its run (`GET /v1/workflows/{run_id}`).
    pub run_id: Uuid,
    /// Holders reached so far: emailed or skipped.
    pub recipients: i64,
    /// Emails the mail server accepted.
    pub sent: i64,
    /// Holders who turned organizers' messages off.
    pub skipped: i64,
    /// Emails given up on.
    pub failed: i64,
    /// Emails queued and not sent yet.
    pub pending: i64,
}

impl From<MessageProgress> for MessageView {
    fn from(m: MessageProgress) -> Self {
        let status = if m.cancelled_at.is_some() || m.run_status == RunStatus::Cancelled.as_str() {
            "cancelled"
        } else {
            match m.run_step.as_str() {
                "start" | "scheduled" => "scheduled",
                "sending" => "sending",
                _ => "sent",
            }
        };
        MessageView {
            id: m.id,
            subject: m.subject,
            body: m.body,
            send_at: m.send_at,
            created_at: m.created_at,
            status: status.into(),
            run_id: m.run_id,
            recipients: m.queued + m.opted_out,
            sent: m.sent,
            skipped: m.opted_out,
            failed: m.failed,
            pending: (m.queued - m.sent - m.failed).max(0),
        }
    }
}

async fn view_of(
    conn: &mut diesel_async::AsyncPgConnection,
    event_id: Uuid,
    message_id: Uuid,
) -> AppResult<MessageView> {
    reminders::list_with_progress(conn, event_id)
        .await?
        .into_iter()
        .find(|m| m.id == message_id)
        .map(MessageView::from)
        .ok_or_else(|| AppError::not_found("message"))
}

/// Sends a message to every holder of a valid ticket of the event (who has
/// not turned organizers' messages off), now or at `send_at`. The same
/// `Idempotency-Key` with the same body returns the same message.
#[utoipa::path(post, path = "/events/{id}/messages", tag = "events",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id"), IdempotencyKey),
    request_body = SendMessageRequest,
    responses(
        (status = 201, description = "The message, scheduled", body = MessageView),
        (status = 400, description = idempotency_key::REQUIRED_RESPONSE, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`event_not_published`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (with `field`), `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn send_message(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<SendMessageRequest>,
) -> AppResult<(StatusCode, Json<MessageView>)> {
    let subject = support::line("subject", &body.subject, 200)?;
    let text = support::text("body", &body.body, 20_000)?;
    if text.is_empty() {
        return Err(AppError::validation("body", "body must not be blank"));
    }
    let now = Utc::now();
    let send_at = body.send_at.map_or(now, |at| at.max(now));
    support::timestamp("send_at", send_at)?;

    let mut conn = state.conn().await?;
    let event = managed_event(&mut conn, &user, id).await?;
    let starter = Starter::new(user.user_id, key, &(id, &body), None);
    if let Some(run) = runs::earlier::<OrganizerMessage>(&mut conn, &starter).await? {
        let message = reminders::message_of_run(&mut conn, run.id)
            .await?
            .ok_or_else(|| AppError::not_found("message"))?;
        return Ok((
            StatusCode::CREATED,
            Json(view_of(&mut conn, id, message.id).await?),
        ));
    }
    if event.status != EventStatus::Published {
        return Err(AppError::conflict(
            "event_not_published",
            format!(
                "messages go to ticket holders of a published event; this one is {}",
                event.status.as_str()
            ),
        )
        .with("event_status", event.status.as_str()));
    }
    let message_id = Uuid::now_v7();
    let mailing = MailingState::message(id, message_id, send_at, event.starts_at);
    let message = conn
        .transaction::<_, AppError, _>(async |conn| {
            let (run, created) = runs::start::<OrganizerMessage>(conn, &starter, &mailing).await?;
            if !created {
                // The same request raced this one and won: answer with its message.
                return reminders::message_of_run(conn, run.id)
                    .await?
                    .ok_or_else(|| AppError::not_found("message"));
            }
            Ok(reminders::insert_message(
                conn,
                &NewMessage {
                    id: message_id,
                    event_id: id,
                    author_id: user.user_id,
                    subject: &subject,
                    body: &text,
                    send_at,
                    run_id: run.id,
                },
            )
            .await?)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(view_of(&mut conn, id, message.id).await?),
    ))
}

/// The event's messages, newest first, with their progress.
#[utoipa::path(get, path = "/events/{id}/messages", tag = "events",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 200, description = "The messages, newest first", body = [MessageView]),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_messages(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> AppResult<Json<Vec<MessageView>>> {
    let mut conn = state.conn().await?;
    managed_event(&mut conn, &user, id).await?;
    let messages = reminders::list_with_progress(&mut conn, id).await?;
    Ok(Json(messages.into_iter().map(MessageView::from).collect()))
}

/// Withdraws a message that has not started going out. One being sent (or
/// sent) can't be withdrawn: 409. Withdrawing twice is harmless.
#[utoipa::path(delete, path = "/events/{id}/messages/{message_id}", tag = "events",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Event id"),
        ("message_id" = Uuid, Path, description = "Message id"),
    ),
    responses(
        (status = 204, description = "Withdrawn: nobody gets it"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours, or no such message of it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`message_sending` or `message_sent`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn withdraw_message(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path((id, message_id)): Path<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    let mut conn = state.conn().await?;
    managed_event(&mut conn, &user, id).await?;
    let message = reminders::find_message(&mut conn, message_id)
        .await?
        .filter(|m| m.event_id == id)
        .ok_or_else(|| AppError::not_found("message"))?;
    conn.transaction::<_, AppError, _>(async |conn| {
        // The run first, then the message: the order its batches lock them
        // in. With the run locked its step can't move under this decision.
        let run = workflow_runs::lock(conn, message.run_id)
            .await?
            .ok_or_else(|| AppError::not_found("message"))?;
        let message = reminders::lock_message(conn, id, message_id)
            .await?
            .ok_or_else(|| AppError::not_found("message"))?;
        if message.cancelled_at.is_some() || run.status == RunStatus::Cancelled.as_str() {
            return Ok(());
        }
        match run.step.as_str() {
            "start" | "scheduled" => {}
            "sending" => {
                return Err(AppError::conflict(
                    "message_sending",
                    "this message is being sent and can no longer be withdrawn",
                ));
            }
            _ => {
                return Err(AppError::conflict(
                    "message_sent",
                    "this message has been sent",
                ));
            }
        }
        // Marked on the message (a batch checks it) and told to the run (it
        // ends without sending).
        reminders::mark_withdrawn(conn, message_id, Utc::now()).await?;
        super::mailings::cancel(conn, run.id, "withdrawn").await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
