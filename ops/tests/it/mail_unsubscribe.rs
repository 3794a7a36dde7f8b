//! One-click unsubscribe (RFC 8058) and the email preferences of `/v1/me`.
//! Reminders and organizer messages are sent by the real `send_email` job to
//! a real SMTP server; the link in their `List-Unsubscribe` header is used as
//! a mail client would use it: a POST, without signing in.

use std::time::Duration;

use boxoffice_models::notifications::{self, NewNotification};
use boxoffice_models::unsubscribe::{self, MailingList};
use boxoffice_models::users::Role;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::catalog_fixtures::send;
use crate::checkout_support::event_on_sale;
use crate::email::{SmtpSink, smtp_mailer};
use crate::harness::users::TestUser;
use crate::harness::wait;
use crate::harness::{TEST_JWT_SECRET, TestApp, assert_problem};
use crate::mail_content::{ParsedEmail, parse_email};

/// `(notify_reminders, notify_messages)` as stored.
async fn stored_preferences(conn: &mut AsyncPgConnection, user: Uuid) -> (bool, bool) {
    use boxoffice_models::schema::users;
    users::table
        .find(user)
        .select((users::notify_reminders, users::notify_messages))
        .first(conn)
        .await
        .unwrap()
}

/// Queues a notification of `kind` for `user` about `event_id`, as the
/// reminder and organizer-message fan-outs do.
async fn queue(
    conn: &mut AsyncPgConnection,
    user: &TestUser,
    kind: &str,
    body: &str,
    context: Value,
) -> Uuid {
    notifications::enqueue(
        conn,
        NewNotification {
            dedupe_key: &format!("{kind}:{}", Uuid::new_v4()),
            kind,
            recipient: notifications::Recipient::Address(&user.email),
            subject: "From the organizer of Flash Sale",
            body_text: body,
            user_id: Some(user.id),
            context: &context,
        },
    )
    .await
    .unwrap()
    .expect("a new notification")
}

/// The email the sink received for `recipient`.
async fn received_by(sink: &SmtpSink, recipient: &str) -> ParsedEmail {
    let raw = wait::value(
        Duration::from_secs(30),
        "the email to reach the SMTP server",
        async || {
            sink.messages()
                .into_iter()
                .find(|m| m.contains(&format!("To: {recipient}\r\n")))
        },
    )
    .await;
    parse_email(&raw)
}

/// The URL inside `List-Unsubscribe: <…>`.
fn unsubscribe_url(email: &ParsedEmail) -> String {
    let header = email
        .list_unsubscribe
        .as_deref()
        .expect("a List-Unsubscribe header");
    header
        .strip_prefix('<')
        .and_then(|h| h.strip_suffix('>'))
        .unwrap_or_else(|| panic!("not <url>: {header}"))
        .to_owned()
}

/// The link with its token replaced.
fn with_token(url: &str, token: &str) -> String {
    let (base, _) = url.split_once("?token=").expect("a token in the link");
    format!("{base}?token={token}")
}

/// What a mail client sends for one-click unsubscribe: no cookie, no token.
async fn one_click(app: &TestApp, url: &str) -> reqwest::Response {
    app.client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_organizer_message_is_escaped_and_its_one_click_link_unsubscribes_without_signing_in() {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn().await;
    app.start_workers_with_mailer("http://127.0.0.1:1", smtp_mailer(&sink.url()));
    let organizer = app.create_user(&[Role::Organizer]).await;
    let holder = app.create_user(&[Role::Participant]).await;
    let bystander = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 15).await;
    let mut conn = app.raw_conn().await;

    let body =
        "Doors open at 19:00.\n\n<script>alert(1)</script> <b>Bring</b> your ticket & smile.";
    queue(
        &mut conn,
        &holder,
        "organizer_message",
        body,
        json!({ "event_id": event.event_id, "message_id": Uuid::now_v7() }),
    )
    .await;
    let email = received_by(&sink, &holder.email).await;

    // The organizer's text: escaped in HTML, as written in the text part.
    assert!(!email.html.contains("<script>"), "{}", email.html);
    assert!(!email.html.contains("<b>Bring"), "{}", email.html);
    assert!(email.html.contains("&lt;script&gt;"), "{}", email.html);
    assert!(email.text.contains(body), "{}", email.text);
    // The event's local time (Berlin) and venue.
    assert!(email.text.contains("(Europe/Berlin)"), "{}", email.text);
    assert!(
        email.text.contains("Hall, 1 Street, Berlin, DE"),
        "{}",
        email.text
    );
    assert!(email.files.is_empty(), "a message carries no tickets");

    // RFC 8058: the link, and the one-click POST it takes.
    assert_eq!(
        email.list_unsubscribe_post.as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let url = unsubscribe_url(&email);
    assert!(
        url.starts_with(&format!("{}/v1/unsubscribe?token=", app.base_url)),
        "{url}"
    );
    assert!(email.text.contains(&url), "the text part has the link too");

    // Opening the link shows a button; it unsubscribes nobody by itself.
    let page = app.client.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("<form method=\"post\">"), "{page}");
    assert!(page.contains("messages from organizers"), "{page}");
    assert_eq!(stored_preferences(&mut conn, holder.id).await, (true, true));

    // Forged, altered, expired, or an access token: refused, nothing changes.
    let token = url.split_once("?token=").unwrap().1.to_owned();
    let forged = unsubscribe::sign(
        b"somebody-elses-secret-0123456789-abcdef",
        holder.id,
        MailingList::Messages,
    );
    let (head, rest) = token.split_once('.').unwrap();
    let (claims, signature) = rest.split_once('.').unwrap();
    // Another participant's id in the claims, the signature left as it was.
    let altered_claims = {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut decoded: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        decoded["sub"] = json!(bystander.id);
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&decoded).unwrap())
    };
    let altered = format!("{head}.{altered_claims}.{signature}");
    let expired =
        unsubscribe::sign_at(TEST_JWT_SECRET, holder.id, MailingList::Messages, 1_000_000);
    for bad in [
        forged.as_str(),
        altered.as_str(),
        expired.as_str(),
        holder.access_token.as_str(),
        "not-a-token",
    ] {
        let r = one_click(&app, &with_token(&url, bad)).await;
        assert_problem(r, 400, "invalid_unsubscribe_link").await;
    }
    let r = app
        .client
        .get(with_token(&url, &altered))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "invalid_unsubscribe_link").await;
    assert_eq!(stored_preferences(&mut conn, holder.id).await, (true, true));
    assert_eq!(
        stored_preferences(&mut conn, bystander.id).await,
        (true, true)
    );

    // The real link's POST, without signing in: messages off, reminders kept.
    let r = one_click(&app, &url).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        stored_preferences(&mut conn, holder.id).await,
        (true, false)
    );
    assert_eq!(
        stored_preferences(&mut conn, bystander.id).await,
        (true, true)
    );
    // Pressed again (a retrying client): still off, still fine.
    assert_eq!(one_click(&app, &url).await.status(), 204);
    // From a browser (the confirmation page's button), a page says so.
    let r = app
        .client
        .post(&url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("You no longer receive"));
    // The participant sees it in their account.
    let me: Value = send(&app, Method::GET, "/v1/me", Some(&holder), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&me["notify_reminders"], &me["notify_messages"]),
        (&json!(true), &json!(false))
    );
}

#[tokio::test]
async fn reminders_carry_their_own_list_and_the_preferences_are_kept_through_the_api() {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn().await;
    app.start_workers_with_mailer("http://127.0.0.1:1", smtp_mailer(&sink.url()));
    let organizer = app.create_user(&[Role::Organizer]).await;
    let holder = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 15).await;
    let mut conn = app.raw_conn().await;

    // PATCH /v1/me changes either preference alone; GET shows both.
    let r = send(
        &app,
        Method::PATCH,
        "/v1/me",
        Some(&holder),
        Some(json!({ "notify_reminders": false })),
    )
    .await;
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(
        (&me["notify_reminders"], &me["notify_messages"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(
        stored_preferences(&mut conn, holder.id).await,
        (false, true)
    );
    let r = send(
        &app,
        Method::PATCH,
        "/v1/me",
        Some(&holder),
        Some(json!({ "notify_reminders": true, "display_name": "Ada" })),
    )
    .await;
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(
        (&me["notify_reminders"], &me["display_name"]),
        (&json!(true), &json!("Ada"))
    );
    let r = send(
        &app,
        Method::PATCH,
        "/v1/me",
        Some(&holder),
        Some(json!({ "notify_messages": "no thanks" })),
    )
    .await;
    assert_problem(r, 422, "invalid_body").await;
    assert_eq!(stored_preferences(&mut conn, holder.id).await, (true, true));

    // A reminder's link leaves the reminders list, and only it.
    queue(
        &mut conn,
        &holder,
        "reminder",
        "Flash Sale starts in one hour.",
        json!({ "event_id": event.event_id, "booking_id": Uuid::now_v7(), "offset_minutes": 60 }),
    )
    .await;
    let email = received_by(&sink, &holder.email).await;
    assert_eq!(
        email.list_unsubscribe_post.as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let url = unsubscribe_url(&email);
    assert!(email.text.contains("event reminders"), "{}", email.text);
    assert!(
        email
            .files
            .iter()
            .any(|(kind, _, _)| kind == "text/calendar"),
        "a reminder carries the calendar file"
    );
    assert_eq!(one_click(&app, &url).await.status(), 204);
    assert_eq!(
        stored_preferences(&mut conn, holder.id).await,
        (false, true)
    );
    // The preference holds: it is what the reminder fan-out reads, and the
    // participant sees and can undo it.
    let me: Value = send(&app, Method::GET, "/v1/me", Some(&holder), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["notify_reminders"], json!(false));
    let r = send(
        &app,
        Method::PATCH,
        "/v1/me",
        Some(&holder),
        Some(json!({ "notify_reminders": true })),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(stored_preferences(&mut conn, holder.id).await, (true, true));
}
