//! Organizer messages: one to 1,000 ticket holders goes out once to each
//! (and not to a holder who turned messages off); a scheduled one can be
//! withdrawn, a sent one cannot; another organizer's event is a 404.

use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice_models::users::Role;
use boxoffice_workers::adapters::mailer::{self, MailSettings};
use chrono::Utc;
use diesel_async::SimpleAsyncConnection;
use serde_json::{Value, json};

use super::support::{SmtpSink, count, per_recipient, seed_bookings, seeded_email, wait_until};
use crate::checkout_support::event_on_sale;
use crate::harness::users::TestUser;
use crate::harness::{TestApp, assert_problem};

const HOLDERS: usize = 1_000;
const SUBJECT: &str = "Doors open at 19:00";

async fn post_message(
    app: &TestApp,
    user: &TestUser,
    event: uuid::Uuid,
    key: &str,
    body: Value,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/events/{event}/messages")))
        .header("authorization", user.bearer())
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn list(app: &TestApp, user: &TestUser, event: uuid::Uuid) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/v1/events/{event}/messages")))
        .header("authorization", user.bearer())
        .send()
        .await
        .unwrap()
}

async fn withdraw(
    app: &TestApp,
    user: &TestUser,
    event: uuid::Uuid,
    message: &str,
) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/v1/events/{event}/messages/{message}")))
        .header("authorization", user.bearer())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_reaches_1000_holders_once_and_a_scheduled_one_can_be_withdrawn() {
    let app = TestApp::spawn().await;
    let sink = SmtpSink::start().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let other_organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1000, 2000)], 10).await;
    // 1,000 holders who want messages, and one who does not.
    seed_bookings(
        &app.db.url,
        event.event_id,
        event.ticket_types[0],
        HOLDERS + 1,
        "msg",
        1000,
    )
    .await;
    let mut conn = app.raw_conn().await;
    conn.batch_execute(&format!(
        "UPDATE users SET notify_messages = false WHERE email = '{}'",
        seeded_email("msg", HOLDERS)
    ))
    .await
    .unwrap();
    let mailer = mailer::build(&MailSettings {
        smtp_url: Some(sink.url()),
        mail_dir: std::path::PathBuf::from("unused"),
        from: "Boxoffice <tickets@boxoffice.test>".into(),
        smtp_timeout: Duration::from_secs(5),
    })
    .expect("an SMTP mailer");
    app.start_workers_with_mailer("http://127.0.0.1:9", Arc::clone(&mailer));

    // Another organizer sees no such event, to read, send or withdraw.
    assert_problem(
        list(&app, &other_organizer, event.event_id).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        post_message(
            &app,
            &other_organizer,
            event.event_id,
            "other-1",
            json!({ "subject": "Hi", "body": "Not mine" }),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    // Bad input is a clear 422.
    assert_problem(
        post_message(
            &app,
            &organizer,
            event.event_id,
            "blank-1",
            json!({ "subject": " ", "body": "text" }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;

    // Sent now.
    let started = Instant::now();
    let r = post_message(
        &app,
        &organizer,
        event.event_id,
        "now-1",
        json!({ "subject": SUBJECT, "body": "<b>Bring</b> your ticket.\nSee you!" }),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let sent_now: Value = r.json().await.unwrap();
    let sent_id = sent_now["id"].as_str().unwrap().to_owned();
    // The same request again is the same message.
    let again: Value = post_message(
        &app,
        &organizer,
        event.event_id,
        "now-1",
        json!({ "subject": SUBJECT, "body": "<b>Bring</b> your ticket.\nSee you!" }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(again["id"], sent_now["id"]);

    wait_until(Duration::from_secs(150), "1,000 messages sent", || async {
        let r = list(&app, &organizer, event.event_id).await;
        let messages: Value = r.json().await.unwrap();
        messages[0]["sent"] == json!(HOLDERS)
    })
    .await;
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = per_recipient(sink.dir(), SUBJECT);
    assert_eq!(received.len(), HOLDERS, "every holder who wants it gets it");
    assert!(received.values().all(|&n| n == 1), "nobody gets it twice");
    assert!(
        !received.contains_key(&seeded_email("msg", HOLDERS)),
        "the holder who turned messages off gets none"
    );
    let messages: Value = list(&app, &organizer, event.event_id)
        .await
        .json()
        .await
        .unwrap();
    let progress = &messages[0];
    assert_eq!(progress["status"], "sent");
    assert_eq!(progress["recipients"], json!(HOLDERS + 1));
    assert_eq!(progress["skipped"], 1);
    assert_eq!(progress["failed"], 0);
    assert_eq!(progress["pending"], 0);
    println!(
        "organizer message: {HOLDERS} holders emailed once each in {:.1} s ({:.0} emails/s), 1 skipped",
        elapsed.as_secs_f64(),
        HOLDERS as f64 / elapsed.as_secs_f64()
    );

    // A sent message can't be withdrawn.
    assert_problem(
        withdraw(&app, &organizer, event.event_id, &sent_id).await,
        409,
        "message_sent",
    )
    .await;

    // Scheduled for tomorrow, then withdrawn: it never goes out.
    let r = post_message(
        &app,
        &organizer,
        event.event_id,
        "later-1",
        json!({
            "subject": "Parking closed",
            "body": "Come by train.",
            "send_at": Utc::now() + chrono::Duration::days(1),
        }),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let later: Value = r.json().await.unwrap();
    assert_eq!(later["status"], "scheduled");
    let later_id = later["id"].as_str().unwrap().to_owned();
    assert_problem(
        withdraw(&app, &other_organizer, event.event_id, &later_id).await,
        404,
        "not_found",
    )
    .await;
    let r = withdraw(&app, &organizer, event.event_id, &later_id).await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    // Withdrawing twice is harmless.
    let r = withdraw(&app, &organizer, event.event_id, &later_id).await;
    assert_eq!(r.status(), 204);
    wait_until(
        Duration::from_secs(20),
        "the withdrawn message's run ends",
        || async {
            let mut conn = app.raw_conn().await;
            count(
                &mut conn,
                &format!(
                "SELECT count(*) FROM workflow_runs r JOIN organizer_messages m ON m.run_id = r.id
                  WHERE m.id = '{later_id}' AND r.status = 'cancelled'"
            ),
            )
            .await
                == 1
        },
    )
    .await;
    let messages: Value = list(&app, &organizer, event.event_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(messages[0]["id"], later_id.as_str());
    assert_eq!(messages[0]["status"], "cancelled");
    assert_eq!(messages[0]["recipients"], 0);
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) FROM notifications WHERE context->>'message_id' = '{later_id}'"
            ),
        )
        .await,
        0,
        "nothing was queued for the withdrawn message"
    );
}
