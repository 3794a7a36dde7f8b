//! Emails people want to read, built at sending time from a notification's
//! kind and context (`models::notifications`): the workflow that decided the
//! email records ids and its plain text, and this module adds the rest, so
//! every kind gets the same care without its workflow knowing how.
//!
//! - an HTML part ([`templates`], auto-escaped) and a text part;
//! - for an event in the context: its date and time in the venue's zone
//!   ([`when`]), the venue's name and address ([`facts`]);
//! - for a booking's tickets (`booking_confirmation`, `reminder`): one QR code
//!   image per ticket from its signed payload ([`qr`]) and an `.ics` calendar
//!   file ([`calendar`]);
//! - for reminders and organizer messages: a one-click unsubscribe link
//!   ([`links`], RFC 8058).
//!
//! A context that is empty, unknown, or names an event that no longer exists
//! gives an email made of the notification's text alone.

pub mod calendar;
pub mod facts;
pub mod links;
pub mod qr;
pub mod templates;
pub mod when;

use boxoffice_models::notifications::Notification;
use boxoffice_models::unsubscribe::MailingList;
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde::Deserialize;
use uuid::Uuid;

use crate::adapters::mailer::{MailAttachment, OutgoingEmail};
pub use links::LinkSettings;
use templates::{EmailView, EventView, TicketView, UnsubscribeView};

/// The ids a notification's context may carry; each kind uses some.
#[derive(Debug, Default, Deserialize)]
struct Context {
    event_id: Option<Uuid>,
    booking_id: Option<Uuid>,
    /// A waitlist offer's deadline.
    expires_at: Option<DateTime<Utc>>,
}

/// Kinds whose email carries the booking's tickets and a calendar file.
fn carries_tickets(kind: &str) -> bool {
    matches!(kind, "booking_confirmation" | "reminder")
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Reading the facts failed: worth another try.
    #[error("reading what the email shows: {0}")]
    Database(#[from] diesel::result::Error),
    /// A template or an image could not be made: the same data fails again.
    #[error("building the email: {0}")]
    Build(String),
}

/// The email of `notification`, ready for a mailer.
pub async fn render(
    conn: &mut AsyncPgConnection,
    links: &LinkSettings,
    notification: &Notification,
) -> Result<OutgoingEmail, RenderError> {
    // A context this code does not understand is rendered as text only
    // rather than refused: the email still goes out.
    let context: Context = serde_json::from_value(notification.context.clone()).unwrap_or_default();
    let (event, tickets) = match (context.event_id, context.booking_id) {
        (Some(id), Some(booking)) if carries_tickets(&notification.kind) => {
            facts::event_and_tickets(conn, id, booking)
                .await?
                .map_or((None, Vec::new()), |(event, tickets)| {
                    (Some(event), tickets)
                })
        }
        (Some(id), _) => (facts::event(conn, id).await?, Vec::new()),
        (None, _) => (None, Vec::new()),
    };
    let unsubscribe = MailingList::for_kind(&notification.kind)
        .zip(notification.user_id)
        .map(|(list, user)| (list, links.unsubscribe_url(user, list)));
    build(
        notification,
        links,
        event.as_ref(),
        &tickets,
        context.expires_at,
        unsubscribe,
    )
}

/// [`render`] once the facts are read: pure.
fn build(
    notification: &Notification,
    links: &LinkSettings,
    event: Option<&facts::EventFacts>,
    tickets: &[facts::TicketFacts],
    expires_at: Option<DateTime<Utc>>,
    unsubscribe: Option<(MailingList, String)>,
) -> Result<OutgoingEmail, RenderError> {
    let build_error = |e: &dyn std::fmt::Display| RenderError::Build(e.to_string());
    let mut attachments = Vec::new();
    let mut ticket_views = Vec::new();
    for ticket in tickets {
        let cid = format!("ticket-{}@{}", ticket.id, links.domain());
        attachments.push(MailAttachment {
            filename: format!("ticket-{}.png", ticket.number),
            content_type: "image/png".to_owned(),
            bytes: qr::png(&ticket.qr_payload).map_err(|e| build_error(&e))?,
            inline_id: Some(cid.clone()),
        });
        ticket_views.push(TicketView {
            number: ticket.number.clone(),
            type_name: ticket.type_name.clone(),
            cid,
        });
    }
    let with_calendar = event.is_some() && carries_tickets(&notification.kind);
    if let (true, Some(event)) = (with_calendar, event) {
        attachments.push(MailAttachment {
            filename: "event.ics".to_owned(),
            content_type: "text/calendar; charset=utf-8; method=PUBLISH".to_owned(),
            bytes: calendar::ics(event, links.domain()).into_bytes(),
            inline_id: None,
        });
    }
    let times = event.map(when::local_times);
    let text = &notification.body_text;
    let view = EmailView {
        subject: notification.subject.clone(),
        body_text: notification.body_text.clone(),
        paragraphs: templates::paragraphs(&notification.body_text),
        text_has_event: times.as_ref().is_some_and(|t| text.contains(&t.one_line())),
        text_has_tickets: !tickets.is_empty() && tickets.iter().all(|t| text.contains(&t.number)),
        event: event.zip(times).map(|(e, times)| EventView {
            title: e.title.clone(),
            times,
            venue_name: e.venue.as_ref().map(|v| v.name.clone()),
            venue_address: e.venue.as_ref().map(facts::VenueFacts::full_address),
        }),
        tickets: ticket_views,
        offer_expires: match (expires_at, event) {
            (Some(at), Some(e)) => Some(when::moment(at, e.zone)),
            (Some(at), None) => Some(when::moment(at, chrono_tz::Tz::UTC)),
            _ => None,
        },
        calendar: with_calendar,
        unsubscribe: unsubscribe.as_ref().map(|(list, url)| UnsubscribeView {
            list: links::list_label(*list),
            url: url.clone(),
        }),
    };
    let (html, text) = templates::render(&view).map_err(|e| build_error(&e))?;
    Ok(OutgoingEmail {
        notification_id: notification.id,
        to: notification.recipient.clone(),
        subject: notification.subject.clone(),
        body_text: text,
        html: Some(html),
        attachments,
        list_unsubscribe: unsubscribe.map(|(_, url)| url),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::adapters::mailer::{compose, parse_from};

    fn notification(kind: &str, user_id: Option<Uuid>) -> Notification {
        Notification {
            id: Uuid::now_v7(),
            dedupe_key: "k".into(),
            kind: kind.into(),
            recipient: "ada@example.com".into(),
            subject: "Subject".into(),
            body_text: "Body.".into(),
            status: "pending".into(),
            attempts: 0,
            last_error: None,
            created_at: Utc::now(),
            sent_at: None,
            updated_at: Utc::now(),
            user_id,
            context: serde_json::json!({}),
            read_at: None,
        }
    }

    fn links() -> LinkSettings {
        LinkSettings {
            public_url: "https://tickets.example.com".into(),
            unsubscribe_secret: b"unit-test-secret-0123456789abcdef".to_vec(),
        }
    }

    fn event() -> facts::EventFacts {
        facts::EventFacts {
            id: Uuid::now_v7(),
            title: "Jazz night".into(),
            starts_at: Utc.with_ymd_and_hms(2027, 1, 15, 19, 0, 0).unwrap(),
            ends_at: Utc.with_ymd_and_hms(2027, 1, 15, 22, 0, 0).unwrap(),
            zone: chrono_tz::Europe::Paris,
            venue: Some(facts::VenueFacts {
                name: "Blue Hall".into(),
                address: "1 rue de la Paix".into(),
                city: "Paris".into(),
                country: "FR".into(),
            }),
        }
    }

    #[test]
    fn a_waitlist_offer_shows_its_deadline_in_the_venues_zone_and_carries_nothing_else() {
        let deadline = Utc.with_ymd_and_hms(2027, 1, 10, 17, 30, 0).unwrap();
        let email = build(
            &notification("waitlist_offer", Some(Uuid::now_v7())),
            &links(),
            Some(&event()),
            &[],
            Some(deadline),
            None,
        )
        .unwrap();
        assert!(
            email.body_text.contains(
                "This offer holds until Sunday 10 January 2027, 18:30 CET (Europe/Paris)."
            ),
            "{}",
            email.body_text
        );
        assert!(
            email
                .body_text
                .contains("Where: Blue Hall, 1 rue de la Paix, Paris, FR")
        );
        assert!(email.attachments.is_empty());
        assert_eq!(email.list_unsubscribe, None);
    }

    #[test]
    fn the_message_has_both_parts_inline_images_the_calendar_and_the_one_click_headers() {
        let user = Uuid::now_v7();
        let url = links().unsubscribe_url(user, MailingList::Reminders);
        let ticket = facts::TicketFacts {
            id: Uuid::now_v7(),
            number: "ABCD-EFGH".into(),
            type_name: "Standing".into(),
            qr_payload: "BX1.payload.signature".into(),
        };
        let email = build(
            &notification("reminder", Some(user)),
            &links(),
            Some(&event()),
            &[ticket],
            None,
            Some((MailingList::Reminders, url.clone())),
        )
        .unwrap();
        let from = parse_from("Boxoffice <tickets@boxoffice.test>").unwrap();
        let raw = String::from_utf8(compose(&from, &email).unwrap().formatted()).unwrap();
        assert!(
            raw.contains(&format!("List-Unsubscribe: <{url}>\r\n")),
            "{raw}"
        );
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
        for part in [
            "multipart/mixed",
            "multipart/alternative",
            "multipart/related",
            "text/plain",
            "text/html",
            "image/png",
            "text/calendar",
        ] {
            assert!(
                raw.contains(&format!("Content-Type: {part}")),
                "no {part}: {raw}"
            );
        }
        assert!(raw.contains("Content-ID: <ticket-"), "{raw}");
    }
}
