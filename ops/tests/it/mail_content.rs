//! What a participant's email looks like, read back from a real SMTP server:
//! the confirmation of a checkout made over HTTP, sent by the `send_email`
//! job in real workers, parsed as a mail client would (`mail-parser`): a text
//! and an HTML part, the event's local date, time and zone, the venue, one QR
//! image per ticket that decodes (`rqrr`) to that ticket's signed payload, and
//! a calendar file that parses (`icalendar`) with the event's start and end.

use std::collections::BTreeSet;
use std::time::Duration;

use boxoffice_models::users::Role;
use chrono::{DateTime, TimeZone, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use icalendar::{CalendarDateTime, Component, DatePerhapsTime, EventLike};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::Value;
use uuid::Uuid;

use crate::checkout_support::{event_on_sale, is_finished, order, start, wait_for};
use crate::email::{SmtpSink, smtp_mailer};
use crate::harness::TestApp;
use crate::harness::wait;

/// A parsed email's parts, owned.
pub(crate) struct ParsedEmail {
    pub text: String,
    /// The HTML part as sent (escaped).
    pub html: String,
    /// The HTML part with its character references read back (`&#x2f;` is
    /// `/`), to compare with plain strings.
    pub html_read: String,
    /// `(content type, filename, bytes)` of every non-text part.
    pub files: Vec<(String, String, Vec<u8>)>,
    pub list_unsubscribe: Option<String>,
    pub list_unsubscribe_post: Option<String>,
}

pub(crate) fn parse_email(raw: &str) -> ParsedEmail {
    let message = MessageParser::default()
        .parse(raw.as_bytes())
        .expect("the message parses");
    let header = |name: &str| message.header_raw(name).map(|v| v.trim().to_owned());
    let files = message
        .attachments()
        .map(|part| {
            let kind = part
                .content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()))
                .unwrap_or_default();
            let name = part.attachment_name().unwrap_or_default().to_owned();
            (kind, name, part.contents().to_vec())
        })
        .collect();
    // Line ends as the program wrote them (SMTP carries CRLF).
    let html = message
        .body_html(0)
        .expect("an HTML part")
        .replace("\r\n", "\n");
    ParsedEmail {
        text: message
            .body_text(0)
            .expect("a text part")
            .replace("\r\n", "\n"),
        html_read: unescape_html(&html),
        html,
        files,
        list_unsubscribe: header("List-Unsubscribe"),
        list_unsubscribe_post: header("List-Unsubscribe-Post"),
    }
}

/// The character references the template's escaping writes, read back.
fn unescape_html(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The text a QR code image (PNG) carries.
fn decode_qr(png_bytes: &[u8]) -> String {
    decode_qr_with_meta(png_bytes).1
}

/// The QR code's metadata (version, level, mask) and the text it carries.
fn decode_qr_with_meta(png_bytes: &[u8]) -> (rqrr::MetaData, String) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    // One bit per pixel in the file; one byte (0 or 255) per pixel here.
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut pixels).expect("the PNG's pixels");
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let width = info.width as usize;
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(
        info.width as usize,
        info.height as usize,
        |x, y| pixels[y * width + x],
    );
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code per image");
    grids[0].decode().expect("the QR code decodes")
}

fn utc_of(value: DatePerhapsTime) -> DateTime<Utc> {
    match value {
        DatePerhapsTime::DateTime(CalendarDateTime::Utc(at)) => at,
        other => panic!("expected a UTC date-time, got {other:?}"),
    }
}

/// Moves the fixture's event and venue to a known time and place: New York,
/// where the event's 18:30 UTC is 14:30 in the afternoon (EDT).
async fn set_time_and_place(conn: &mut AsyncPgConnection, event_id: Uuid) {
    conn.batch_execute(&format!(
        "UPDATE events SET title = 'Jazz & Blues <Live>',
                starts_at = '2027-07-14 18:30:00+00', ends_at = '2027-07-14 21:00:00+00'
          WHERE id = '{event_id}';
         UPDATE venues SET name = 'Blue Note Hall', address = '131 W 3rd St', city = 'New York',
                country = 'US', timezone = 'America/New_York'
          WHERE id = (SELECT venue_id FROM events WHERE id = '{event_id}');"
    ))
    .await
    .expect("placing the event");
}

#[tokio::test]
async fn a_confirmation_email_has_both_parts_the_local_time_and_venue_a_qr_per_ticket_and_a_calendar()
 {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn().await;
    // Free tickets: no payment provider needed.
    app.start_workers_with_mailer("http://127.0.0.1:1", smtp_mailer(&sink.url()));
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 15).await;
    let mut conn = app.raw_conn().await;
    set_time_and_place(&mut conn, event.event_id).await;

    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 3),
        None,
    )
    .await;
    assert_eq!(r.status(), 202);
    let run_id = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = wait_for(&app, &buyer, &run_id, Duration::from_secs(30), is_finished).await;
    assert_eq!(view["status"], "completed", "{view}");
    let booking_id: Uuid = view["booking_id"].as_str().unwrap().parse().unwrap();

    let messages = wait::value(
        Duration::from_secs(30),
        "the confirmation to reach the SMTP server",
        async || Some(sink.messages()).filter(|m| !m.is_empty()),
    )
    .await;
    assert_eq!(messages.len(), 1);
    let email = parse_email(&messages[0]);

    // Both parts say when, in the venue's zone and naming it, and where.
    let when = "Wednesday 14 July 2027, 14:30 – 17:00 EDT (America/New_York)";
    assert!(email.text.contains(when), "{}", email.text);
    assert!(
        email
            .text
            .contains("Blue Note Hall, 131 W 3rd St, New York, US"),
        "{}",
        email.text
    );
    assert!(
        email.html_read.contains("Wednesday 14 July 2027"),
        "{}",
        email.html
    );
    assert!(
        email
            .html_read
            .contains("14:30 – 17:00 EDT (America/New_York)"),
        "{}",
        email.html
    );
    assert!(email.html_read.contains("Blue Note Hall"), "{}", email.html);
    assert!(
        email.html_read.contains("131 W 3rd St, New York, US"),
        "{}",
        email.html
    );
    // The title is the organizer's text: escaped in HTML, as is in text.
    assert!(
        email.html.contains("Jazz &amp; Blues &lt;Live&gt;"),
        "{}",
        email.html
    );
    assert!(!email.html.contains("<Live>"), "{}", email.html);
    assert!(email.text.contains("Jazz & Blues <Live>"), "{}", email.text);
    // Transactional: always sent, nothing to unsubscribe from.
    assert_eq!(email.list_unsubscribe, None);

    // One QR image per ticket, each decoding to that ticket's signed payload.
    let payloads: BTreeSet<String> = {
        use boxoffice_models::schema::tickets;
        tickets::table
            .filter(tickets::booking_id.eq(booking_id))
            .select(tickets::qr_payload)
            .load::<String>(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .collect()
    };
    assert_eq!(payloads.len(), 3);
    let images: Vec<&Vec<u8>> = email
        .files
        .iter()
        .filter(|(kind, _, _)| kind == "image/png")
        .map(|(_, _, bytes)| bytes)
        .collect();
    assert_eq!(images.len(), 3, "one image per ticket");
    let decoded: BTreeSet<String> = images.iter().map(|png| decode_qr(png)).collect();
    assert_eq!(decoded, payloads);
    assert_eq!(
        email.html.matches("src=\"cid:").count(),
        3,
        "the HTML shows each image"
    );

    // The calendar file parses, with the event's start and end.
    let calendars: Vec<&(String, String, Vec<u8>)> = email
        .files
        .iter()
        .filter(|(kind, _, _)| kind == "text/calendar")
        .collect();
    assert_eq!(
        calendars.len(),
        1,
        "{:?}",
        email.files.iter().map(|f| (&f.0, &f.1)).collect::<Vec<_>>()
    );
    assert_eq!(calendars[0].1, "event.ics");
    let ics = String::from_utf8(calendars[0].2.clone()).unwrap();
    let calendar: icalendar::Calendar = ics.parse().expect("the .ics parses");
    let entry = calendar
        .components
        .iter()
        .find_map(|c| c.as_event())
        .expect("a VEVENT");
    assert_eq!(
        utc_of(entry.get_start().expect("DTSTART")),
        Utc.with_ymd_and_hms(2027, 7, 14, 18, 30, 0).unwrap()
    );
    assert_eq!(
        utc_of(entry.get_end().expect("DTEND")),
        Utc.with_ymd_and_hms(2027, 7, 14, 21, 0, 0).unwrap()
    );
    assert_eq!(entry.get_summary(), Some("Jazz & Blues <Live>"));
    assert_eq!(
        entry.get_location(),
        Some("Blue Note Hall, 131 W 3rd St, New York, US")
    );
    assert_eq!(
        entry.get_uid(),
        Some(format!("event-{}@127.0.0.1", event.event_id).as_str())
    );

    // The participant's notification text says when and where too.
    let (body, kind): (String, String) = {
        use boxoffice_models::schema::notifications;
        notifications::table
            .filter(notifications::user_id.eq(buyer.id))
            .select((notifications::body_text, notifications::kind))
            .first(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(kind, "booking_confirmation");
    assert!(body.contains(&format!("When: {when}")), "{body}");
    assert!(
        body.contains("Where: Blue Note Hall, 131 W 3rd St, New York, US"),
        "{body}"
    );
}

#[tokio::test]
async fn a_notification_without_context_is_its_text_in_both_parts_and_the_file_mailer_writes_the_same_message()
 {
    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    let empty = serde_json::json!({});
    let id = boxoffice_models::notifications::enqueue(
        &mut conn,
        boxoffice_models::notifications::NewNotification {
            dedupe_key: "plain-test",
            kind: "something_new",
            recipient: boxoffice_models::notifications::Recipient::Address("grace@example.com"),
            subject: "A note",
            body_text: "First line.\n\nSecond <paragraph> & more.",
            user_id: None,
            context: &empty,
        },
    )
    .await
    .unwrap()
    .unwrap();
    app.start_workers("http://127.0.0.1:1");
    let path = app.mail_dir().join(format!("{id}.eml"));
    let raw = wait::value(Duration::from_secs(30), "the .eml file", async || {
        std::fs::read_to_string(&path).ok()
    })
    .await;
    let email = parse_email(&raw);
    assert!(
        email.text.contains("Second <paragraph> & more."),
        "{}",
        email.text
    );
    assert!(
        email.html.contains("Second &lt;paragraph&gt; &amp; more."),
        "{}",
        email.html
    );
    assert!(email.files.is_empty(), "no context, no attachments");
    assert_eq!(email.list_unsubscribe, None);
}

#[tokio::test]
async fn refund_cancellation_and_offer_emails_say_when_and_where_and_carry_no_unsubscribe_link() {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn().await;
    app.start_workers_with_mailer("http://127.0.0.1:1", smtp_mailer(&sink.url()));
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let at_venue = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 15).await;
    let online = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 15).await;
    let mut conn = app.raw_conn().await;
    set_time_and_place(&mut conn, at_venue.event_id).await;
    conn.batch_execute(&format!(
        "UPDATE events SET venue_id = NULL, online = true,
                starts_at = '2027-03-02 09:00:00+00', ends_at = '2027-03-02 10:15:00+00'
          WHERE id = '{}';",
        online.event_id
    ))
    .await
    .unwrap();

    let sent = [
        (
            "refund_completed",
            serde_json::json!({ "event_id": at_venue.event_id, "refund_run_id": Uuid::now_v7() }),
        ),
        (
            "event_cancelled",
            serde_json::json!({ "event_id": online.event_id }),
        ),
        (
            "waitlist_offer",
            serde_json::json!({
                "event_id": at_venue.event_id, "entry_id": Uuid::now_v7(),
                "ticket_type_id": at_venue.ticket_types[0], "quantity": 2,
                "expires_at": "2027-07-10T16:00:00Z",
            }),
        ),
    ];
    for (kind, context) in &sent {
        boxoffice_models::notifications::enqueue(
            &mut conn,
            boxoffice_models::notifications::NewNotification {
                dedupe_key: &format!("{kind}:{}", Uuid::new_v4()),
                kind,
                recipient: boxoffice_models::notifications::Recipient::Address(&buyer.email),
                subject: kind,
                body_text: &format!("About your {kind}."),
                user_id: Some(buyer.id),
                context,
            },
        )
        .await
        .unwrap()
        .unwrap();
    }
    let messages = wait::value(Duration::from_secs(30), "three emails", async || {
        Some(sink.messages()).filter(|m| m.len() == 3)
    })
    .await;
    let by_kind = |kind: &str| {
        let raw = messages
            .iter()
            .find(|m| m.contains(&format!("Subject: {kind}\r\n")))
            .unwrap_or_else(|| panic!("no {kind} email"));
        parse_email(raw)
    };

    let refund = by_kind("refund_completed");
    let when = "Wednesday 14 July 2027, 14:30 – 17:00 EDT (America/New_York)";
    assert!(
        refund.text.contains("About your refund_completed."),
        "{}",
        refund.text
    );
    assert!(refund.text.contains(when), "{}", refund.text);
    assert!(
        refund.html_read.contains("Blue Note Hall"),
        "{}",
        refund.html
    );
    assert!(refund.files.is_empty(), "a refund carries no tickets");
    assert_eq!(refund.list_unsubscribe, None, "transactional");

    // An online event has no venue: its time is in UTC, and says so.
    let cancelled = by_kind("event_cancelled");
    assert!(
        cancelled
            .text
            .contains("Tuesday 2 March 2027, 09:00 – 10:15 UTC"),
        "{}",
        cancelled.text
    );
    assert!(
        cancelled.text.contains("Where: online"),
        "{}",
        cancelled.text
    );
    assert!(cancelled.html_read.contains("Online"), "{}", cancelled.html);
    assert_eq!(cancelled.list_unsubscribe, None);

    let offer = by_kind("waitlist_offer");
    assert!(
        offer.text.contains(
            "This offer holds until Saturday 10 July 2027, 12:00 EDT (America/New_York)."
        ),
        "{}",
        offer.text
    );
    assert!(
        offer
            .html_read
            .contains("14:30 – 17:00 EDT (America/New_York)"),
        "{}",
        offer.html
    );
    assert!(
        offer.html_read.contains("Saturday 10 July 2027, 12:00 EDT"),
        "{}",
        offer.html
    );
    assert_eq!(offer.list_unsubscribe, None);
}

/// Ticket codes of every length a payload can take are drawn, read back
/// exactly, at level M, and with the mask the layout scored best (several
/// different ones across the codes, not one fixed mask); a payload too long
/// for any QR code is an error, not a broken image.
#[test]
fn ticket_codes_of_every_length_read_back_at_level_m_with_the_best_mask() {
    use boxoffice_workers::mail::qr;
    const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // A fixed pseudo-random stream (xorshift), so a failure repeats.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut masks = BTreeSet::new();
    for length in (20..=420).step_by(8) {
        let body: String = (0..length)
            .map(|_| BASE64URL[(next() % 64) as usize] as char)
            .collect();
        let payload = format!("BX1.{body}.{}", &body[..length.min(86)]);
        let png_bytes = qr::png(&payload).expect("a ticket code fits a QR code");
        let (meta, read) = decode_qr_with_meta(&png_bytes);
        assert_eq!(read, payload, "length {length}");
        // rqrr numbers the levels by their format bits: 0 is M.
        assert_eq!(meta.ecc_level, 0, "level M, length {length}");
        masks.insert(meta.mask);
    }
    assert!(masks.len() >= 4, "masks chosen: {masks:?}");
    let too_long = "A".repeat(4000);
    assert!(matches!(qr::png(&too_long), Err(qr::QrError::Code(_))));
}
