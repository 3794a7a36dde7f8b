//! The effects of mailings (reminders and organizer messages): one batch of
//! recipients at a time, each email queued with its dedupe key in the run's
//! transaction, which also moves the run's cursor.
//!
//! A batch checks the event (and the message) first, under a share lock so
//! that it is ordered with a cancellation: a cancelled event, a reminder
//! whose event has started, or a withdrawn message stops the mailing.

use boxoffice_models::events::{self, EventStatus};
use boxoffice_models::notifications::{self, NewNotification};
use boxoffice_models::reminders::{self, Recipient};
use boxoffice_models::schema::events as events_table;
use boxoffice_workflows::engine::NoRemote;
use boxoffice_workflows::reminder::{
    Audience, LocalCommand, LocalOutcome, OrganizerMessage, Reminder,
};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{Effects, LocalCx};
use crate::adapters::payments::{PaymentProvider, ProviderError};

impl Effects for Reminder {
    async fn apply_local(
        conn: &mut AsyncPgConnection,
        cx: &LocalCx<'_>,
        _run_id: Uuid,
        command: &LocalCommand,
    ) -> anyhow::Result<LocalOutcome> {
        next_batch(conn, cx.now, command).await
    }

    async fn call_remote(
        _payments: &dyn PaymentProvider,
        _run_id: Uuid,
        command: &NoRemote,
    ) -> Result<(), ProviderError> {
        match *command {}
    }
}

impl Effects for OrganizerMessage {
    async fn apply_local(
        conn: &mut AsyncPgConnection,
        cx: &LocalCx<'_>,
        _run_id: Uuid,
        command: &LocalCommand,
    ) -> anyhow::Result<LocalOutcome> {
        next_batch(conn, cx.now, command).await
    }

    async fn call_remote(
        _payments: &dyn PaymentProvider,
        _run_id: Uuid,
        command: &NoRemote,
    ) -> Result<(), ProviderError> {
        match *command {}
    }
}

fn stop(reason: &str) -> LocalOutcome {
    LocalOutcome::Stop {
        reason: reason.to_owned(),
    }
}

async fn next_batch(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    command: &LocalCommand,
) -> anyhow::Result<LocalOutcome> {
    let LocalCommand::NextBatch {
        event_id,
        audience,
        after,
        limit,
    } = command;
    // Shared with the cancellation's update of the row: a cancellation
    // either commits first (and is seen here) or waits for this batch.
    let Some(event) = events_table::table
        .find(*event_id)
        .select(events::Event::as_select())
        .for_share()
        .first(conn)
        .await
        .optional()?
    else {
        return Ok(stop("event_gone"));
    };
    if event.status == EventStatus::Cancelled {
        return Ok(stop("event_cancelled"));
    }
    let limit = i64::from(*limit);
    let (recipients, content) = match audience {
        Audience::Reminder { offset_minutes } => {
            if event.starts_at <= now {
                return Ok(stop("event_started"));
            }
            (
                reminders::reminder_batch(conn, *event_id, *after, limit).await?,
                Content::Reminder(*offset_minutes),
            )
        }
        Audience::Message { message_id } => {
            let Some(message) = reminders::lock_message(conn, *event_id, *message_id).await? else {
                return Ok(stop("message_gone"));
            };
            if message.cancelled_at.is_some() {
                return Ok(stop("withdrawn"));
            }
            (
                reminders::holder_batch(conn, *event_id, *after, limit).await?,
                Content::Message(message),
            )
        }
    };
    let (mut queued, mut opted_out) = (0u32, 0u32);
    for recipient in &recipients {
        if !recipient.wants {
            opted_out += 1;
            continue;
        }
        let new = match &content {
            Content::Reminder(offset_minutes) => {
                reminder_email(&event, *offset_minutes, now, recipient)
            }
            Content::Message(message) => Email {
                dedupe_key: format!("message:{}:{}", message.id, recipient.user_id),
                kind: "organizer_message",
                subject: message.subject.clone(),
                body: message.body.clone(),
                context: serde_json::json!({ "event_id": event.id, "message_id": message.id }),
            },
        };
        let inserted = notifications::enqueue_within(
            conn,
            NewNotification {
                dedupe_key: &new.dedupe_key,
                kind: new.kind,
                recipient: notifications::Recipient::Address(&recipient.email),
                subject: &new.subject,
                body_text: &new.body,
                user_id: Some(recipient.user_id),
                context: &new.context,
            },
        )
        .await?;
        if inserted.is_some() {
            queued += 1;
        }
    }
    let kind = match audience {
        Audience::Reminder { .. } => "reminder",
        Audience::Message { .. } => "organizer_message",
    };
    metrics::counter!("mailing_emails_queued_total", "kind" => kind).increment(u64::from(queued));
    metrics::counter!("mailing_recipients_opted_out_total", "kind" => kind)
        .increment(u64::from(opted_out));
    Ok(LocalOutcome::Batch {
        queued,
        opted_out,
        last: recipients.last().map(|r| r.key),
        exhausted: (recipients.len() as i64) < limit,
    })
}

/// What a batch sends.
enum Content {
    Reminder(i32),
    Message(reminders::Message),
}

struct Email {
    dedupe_key: String,
    kind: &'static str,
    subject: String,
    body: String,
    context: serde_json::Value,
}

/// The plain-text reminder (the sender renders the full email from its
/// context at sending time). It says how long is really left: a reminder
/// sent late (after an outage) must not claim the time of its offset.
fn reminder_email(
    event: &events::Event,
    offset_minutes: i32,
    now: DateTime<Utc>,
    recipient: &Recipient,
) -> Email {
    let booking_id = recipient.key;
    let left = ((event.starts_at - now).num_seconds() + 30) / 60;
    let when = in_words(i32::try_from(left.max(1)).unwrap_or(i32::MAX));
    let starts = event.starts_at.format("%A %-d %B %Y, %H:%M UTC");
    Email {
        dedupe_key: format!("booking:{booking_id}:reminder:{offset_minutes}"),
        kind: "reminder",
        subject: format!("Reminder: {} starts in {when}", event.title),
        body: format!(
            "{title} starts in {when}, on {starts}.\n\nYour booking: {booking_id}. Bring your tickets (the QR codes in your confirmation email).\n",
            title = event.title
        ),
        context: serde_json::json!({
            "event_id": event.id,
            "booking_id": booking_id,
            "offset_minutes": offset_minutes,
        }),
    }
}

/// "1 hour", "24 hours", "90 minutes", "2 days".
fn in_words(minutes: i32) -> String {
    let plural = |n: i32, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if minutes % 1440 == 0 && minutes > 1440 {
        plural(minutes / 1440, "day")
    } else if minutes % 60 == 0 {
        plural(minutes / 60, "hour")
    } else {
        plural(minutes, "minute")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn offsets_in_words() {
        assert_eq!(super::in_words(60), "1 hour");
        assert_eq!(super::in_words(1440), "24 hours");
        assert_eq!(super::in_words(2880), "2 days");
        assert_eq!(super::in_words(90), "90 minutes");
        assert_eq!(super::in_words(1), "1 minute");
    }
}
