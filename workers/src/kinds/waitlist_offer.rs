//! The waitlist offer's effects: the participant's emails, and giving the
//! offer's units back (to the next entry, by the waitlist's reservation, or
//! to the public when nobody waits). It makes no remote call.

use boxoffice_models::holds;
use boxoffice_models::notifications::{self, NewNotification, Recipient};
use boxoffice_models::schema::ticket_types;
use boxoffice_models::waitlist::{self, ACCEPTED, Entry, OFFERED};
use boxoffice_workflows::engine::NoRemote;
use boxoffice_workflows::waitlist_offer::{End, LocalCommand, LocalOutcome, WaitlistOffer};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{Effects, LocalCx};
use crate::adapters::payments::{PaymentProvider, ProviderError};

impl Effects for WaitlistOffer {
    async fn apply_local(
        conn: &mut AsyncPgConnection,
        _cx: &LocalCx<'_>,
        run_id: Uuid,
        command: &LocalCommand,
    ) -> anyhow::Result<LocalOutcome> {
        Ok(match command {
            LocalCommand::Notify => {
                if let Some(entry) = waitlist::lock_by_offer_run(conn, run_id).await? {
                    tell(conn, &entry, Told::Offered).await?;
                }
                LocalOutcome::Notified
            }
            LocalCommand::Release { end } => release(conn, run_id, *end).await?,
        })
    }

    /// An offer makes no remote call.
    async fn call_remote(
        _payments: &dyn PaymentProvider,
        _run_id: Uuid,
        command: &NoRemote,
    ) -> Result<(), ProviderError> {
        match *command {}
    }

    /// An offer failed for good by an operator gives its units back.
    async fn abandon(conn: &mut AsyncPgConnection, run_id: Uuid) -> anyhow::Result<()> {
        release(conn, run_id, End::Cancelled).await?;
        Ok(())
    }
}

/// Gives the offer's units back and ends its entry, unless an accept moved
/// them to a checkout first. Idempotent: an ended entry is left as it is.
async fn release(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    end: End,
) -> diesel::QueryResult<LocalOutcome> {
    let Some(entry) = waitlist::lock_by_offer_run(conn, run_id).await? else {
        holds::release_for_run(conn, run_id).await?;
        return Ok(LocalOutcome::Released);
    };
    match entry.status.as_str() {
        ACCEPTED => Ok(LocalOutcome::WasAccepted),
        OFFERED => {
            let released = holds::release_for_run(conn, run_id).await?;
            let entry = waitlist::set_status(conn, entry.id, end.entry_status()).await?;
            metrics::counter!("waitlist_offers_ended_total", "end" => end.as_str()).increment(1);
            tracing::info!(entry_id = %entry.id, released, end = end.as_str(), "waitlist offer ended");
            if end == End::Expired {
                tell(conn, &entry, Told::Expired).await?;
            }
            Ok(LocalOutcome::Released)
        }
        _ => Ok(LocalOutcome::Released),
    }
}

enum Told {
    Offered,
    Expired,
}

/// One email per entry and kind (the dedupe key makes a retried step a no-op).
async fn tell(conn: &mut AsyncPgConnection, entry: &Entry, told: Told) -> diesel::QueryResult<()> {
    let title = super::notices::event_title(conn, entry.event_id).await?;
    let type_name: String = ticket_types::table
        .find(entry.ticket_type_id)
        .select(ticket_types::name)
        .first(conn)
        .await?;
    let expires_at = entry.offer_expires_at;
    let lasts = match (entry.offered_at, expires_at) {
        (Some(from), Some(to)) => describe_duration(to - from),
        _ => "a limited time".to_owned(),
    };
    let until = expires_at.map_or_else(String::new, |at| {
        at.format("%Y-%m-%d %H:%M UTC").to_string()
    });
    let q = entry.quantity;
    let tickets = if q == 1 { "ticket" } else { "tickets" };
    let (key, kind, subject, body) = match told {
        Told::Offered => (
            format!("waitlist:{}:offer", entry.id),
            "waitlist_offer",
            format!("Tickets for {title} are waiting for you"),
            format!(
                "Good news: {q} {type_name} {tickets} for {title} are now held for you.\n\n\
                 The offer lasts {lasts}, until {until}. Accept it to go to payment; \
                 after that the tickets go to the next person on the waitlist.\n"
            ),
        ),
        Told::Expired => (
            format!("waitlist:{}:offer_expired", entry.id),
            "waitlist_offer_expired",
            format!("Your offer for {title} has expired"),
            format!(
                "The {q} {type_name} {tickets} held for you for {title} were not taken by {until}, \
                 so they went to the next person on the waitlist.\n"
            ),
        ),
    };
    notifications::enqueue_within(
        conn,
        NewNotification {
            dedupe_key: &key,
            kind,
            recipient: Recipient::Account,
            subject: &subject,
            body_text: &body,
            user_id: Some(entry.participant_id),
            context: &serde_json::json!({
                "event_id": entry.event_id,
                "entry_id": entry.id,
                "ticket_type_id": entry.ticket_type_id,
                "quantity": entry.quantity,
                "expires_at": expires_at,
            }),
        },
    )
    .await?;
    Ok(())
}

/// "12 hours", "1 hour 30 minutes", "45 minutes".
fn describe_duration(duration: chrono::Duration) -> String {
    let minutes = duration.num_minutes().max(0);
    let (hours, minutes) = (minutes / 60, minutes % 60);
    let unit = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    match (hours, minutes) {
        (0, m) => unit(m, "minute", "minutes"),
        (h, 0) => unit(h, "hour", "hours"),
        (h, m) => format!(
            "{} {}",
            unit(h, "hour", "hours"),
            unit(m, "minute", "minutes")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::describe_duration;
    use chrono::Duration;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(describe_duration(Duration::minutes(720)), "12 hours");
        assert_eq!(
            describe_duration(Duration::minutes(90)),
            "1 hour 30 minutes"
        );
        assert_eq!(describe_duration(Duration::minutes(5)), "5 minutes");
        assert_eq!(describe_duration(Duration::minutes(61)), "1 hour 1 minute");
    }
}
