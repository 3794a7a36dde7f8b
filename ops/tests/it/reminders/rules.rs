//! Who gets a reminder, and when: moving the event moves it (nothing at the
//! old time), cancelling the event sends none, a refunded booking and a
//! participant who turned reminders off get none.

use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice_models::schema::users;
use boxoffice_models::unsubscribe::{self, MailingList};
use boxoffice_models::users::Role;
use boxoffice_workers::adapters::mailer::{self, MailSettings};
use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use serde_json::json;

use super::support::{
    SmtpSink, count, due_in, per_recipient, reminder_runs, seed_bookings, seeded_email, wait_until,
};
use crate::checkout_support::event_on_sale;
use crate::harness::{TEST_JWT_SECRET, TestApp};

const NO_PAYMENTS: &str = "http://127.0.0.1:9";
/// What every reminder's subject says.
const REMINDER: &str = "Reminder:";

async fn workers_to(app: &TestApp, sink: &SmtpSink) {
    let mailer = mailer::build(&MailSettings {
        smtp_url: Some(sink.url()),
        mail_dir: std::path::PathBuf::from("unused"),
        from: "Boxoffice <tickets@boxoffice.test>".into(),
        smtp_timeout: Duration::from_secs(5),
    })
    .expect("an SMTP mailer");
    app.start_workers_with_mailer(NO_PAYMENTS, Arc::clone(&mailer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moving_cancelling_refunds_and_opt_outs_decide_who_is_reminded() {
    let app = TestApp::spawn().await;
    let sink = SmtpSink::start().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let moved = event_on_sale(&app.db.url, organizer.id, &[(1000, 100)], 10).await;
    let cancelled = event_on_sale(&app.db.url, organizer.id, &[(0, 100)], 10).await;
    // Three bookings of the moved event: one reminded; one refunded; one
    // whose buyer turned reminders off.
    seed_bookings(
        &app.db.url,
        moved.event_id,
        moved.ticket_types[0],
        3,
        "mv",
        1000,
    )
    .await;
    seed_bookings(
        &app.db.url,
        cancelled.event_id,
        cancelled.ticket_types[0],
        2,
        "cx",
        0,
    )
    .await;
    let mut conn = app.raw_conn().await;
    conn.batch_execute(&format!(
        "UPDATE bookings SET status = 'refunded', refunded_minor = total_minor
          WHERE user_id = (SELECT id FROM users WHERE email = '{}');
         UPDATE tickets SET status = 'void'
          WHERE booking_id IN (SELECT b.id FROM bookings b JOIN users u ON u.id = b.user_id WHERE u.email = '{}');",
        seeded_email("mv", 1),
        seeded_email("mv", 1),
    ))
    .await
    .unwrap();
    // The third buyer leaves the reminders through the one-click link of an
    // earlier reminder: a POST without signing in, as a mail client sends it.
    let opted_out: uuid::Uuid = users::table
        .filter(users::email.eq(seeded_email("mv", 2)))
        .select(users::id)
        .first(&mut conn)
        .await
        .unwrap();
    let token = unsubscribe::sign(TEST_JWT_SECRET, opted_out, MailingList::Reminders);
    let r = app
        .client
        .post(app.url(&format!("/v1/unsubscribe?token={token}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        204,
        "one-click unsubscribe: {}",
        r.text().await.unwrap()
    );
    // Both reminders (1 minute before) fall due in 15 s.
    due_in(&app.db.url, moved.event_id, 1, Duration::from_secs(15)).await;
    due_in(&app.db.url, cancelled.event_id, 1, Duration::from_secs(15)).await;
    let old_due = Instant::now() + Duration::from_secs(15);
    workers_to(&app, &sink).await;

    // Planned: one waiting run per event.
    wait_until(
        Duration::from_secs(10),
        "both reminders planned",
        || async {
            let mut conn = app.raw_conn().await;
            reminder_runs(&mut conn, moved.event_id).await
                == [("waiting".into(), "scheduled".into())]
                && reminder_runs(&mut conn, cancelled.event_id).await
                    == [("waiting".into(), "scheduled".into())]
        },
    )
    .await;

    // The organizer moves one event an hour later and cancels the other.
    let r = app
        .client
        .patch(app.url(&format!("/v1/events/{}", moved.event_id)))
        .header("authorization", organizer.bearer())
        .header("if-match", "*")
        .json(&json!({
            "starts_at": Utc::now() + chrono::Duration::hours(1),
            "ends_at": Utc::now() + chrono::Duration::hours(4),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = app
        .client
        .post(app.url(&format!("/v1/events/{}/cancel", cancelled.event_id)))
        .header("authorization", organizer.bearer())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    // Well past the old time: no reminder went out, for either event.
    tokio::time::sleep_until((old_due + Duration::from_secs(8)).into()).await;
    assert_eq!(
        per_recipient(sink.dir(), REMINDER).len(),
        0,
        "a reminder went out at the old time or for the cancelled event"
    );
    assert_eq!(
        reminder_runs(&mut conn, moved.event_id).await,
        [("waiting".to_owned(), "scheduled".to_owned())],
        "the moved event's reminder waits for its new time"
    );
    let wake_in = count(
        &mut conn,
        &format!(
            "SELECT extract(epoch FROM r.wake_at - now()) FROM event_reminders e
               JOIN workflow_runs r ON r.id = e.run_id WHERE e.event_id = '{}'",
            moved.event_id
        ),
    )
    .await;
    assert!(
        (3400..=3600).contains(&wake_in),
        "the reminder wakes 59 minutes from now, not in {wake_in} s"
    );
    assert_eq!(
        reminder_runs(&mut conn, cancelled.event_id).await,
        [("cancelled".to_owned(), "cancelled".to_owned())],
        "the cancelled event's reminder is cancelled"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM notifications WHERE kind = 'reminder'"
        )
        .await,
        0
    );

    // Moved back so that its reminder falls due in 5 s: exactly the buyer
    // with a valid booking who wants reminders gets one.
    let r = app
        .client
        .patch(app.url(&format!("/v1/events/{}", moved.event_id)))
        .header("authorization", organizer.bearer())
        .header("if-match", "*")
        .json(&json!({
            "starts_at": Utc::now() + chrono::Duration::seconds(65),
            "ends_at": Utc::now() + chrono::Duration::hours(3),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    wait_until(
        Duration::from_secs(30),
        "the reminder run completes",
        || async {
            let mut conn = app.raw_conn().await;
            reminder_runs(&mut conn, moved.event_id).await
                == [("completed".into(), "completed".into())]
        },
    )
    .await;
    wait_until(
        Duration::from_secs(20),
        "the reminder reaches the sink",
        || async { !per_recipient(sink.dir(), REMINDER).is_empty() },
    )
    .await;
    // A moment for anything that should not come.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = per_recipient(sink.dir(), REMINDER);
    assert_eq!(
        received,
        [(seeded_email("mv", 0), 1)].into_iter().collect(),
        "only the valid booking whose buyer wants reminders is reminded, once"
    );
    let opted_out = count(
        &mut conn,
        &format!(
            "SELECT (r.state->>'opted_out')::bigint FROM event_reminders e
               JOIN workflow_runs r ON r.id = e.run_id WHERE e.event_id = '{}'",
            moved.event_id
        ),
    )
    .await;
    assert_eq!(opted_out, 1, "the opted-out buyer is counted as skipped");
    println!(
        "reminder rules: moved reminder sent once at its new time; none at the old time, none for the cancelled event, the refunded booking or the opted-out buyer"
    );
}

#[tokio::test]
async fn reminder_offsets_are_validated_on_create_and_update() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1000, 10)], 10).await;
    for bad in [
        json!([60, 60]),
        json!([1, 2, 3, 4]),
        json!([0]),
        json!([40_321]),
    ] {
        let r = app
            .client
            .patch(app.url(&format!("/v1/events/{}", event.event_id)))
            .header("authorization", organizer.bearer())
            .header("if-match", "*")
            .json(&json!({ "reminder_offsets_minutes": bad }))
            .send()
            .await
            .unwrap();
        let problem = crate::harness::assert_problem(r, 422, "validation_failed").await;
        assert_eq!(problem["field"], "reminder_offsets_minutes", "{bad}");
    }
    let r = app
        .client
        .patch(app.url(&format!("/v1/events/{}", event.event_id)))
        .header("authorization", organizer.bearer())
        .header("if-match", "*")
        .json(&json!({ "reminder_offsets_minutes": [30, 2880] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let mut conn = app.raw_conn().await;
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) FROM events WHERE id = '{}' AND reminder_offsets_minutes = '{{2880,30}}'",
                event.event_id
            )
        )
        .await,
        1,
        "stored longest first"
    );
    let now = Utc::now();
    let create = |offsets: serde_json::Value| {
        app.client
            .post(app.url("/v1/events"))
            .header("authorization", organizer.bearer())
            .json(&json!({
                "title": "Quiet evening",
                "category": "music",
                "online": true,
                "starts_at": now + chrono::Duration::days(3),
                "ends_at": now + chrono::Duration::days(3) + chrono::Duration::hours(2),
                "reminder_offsets_minutes": offsets,
            }))
            .send()
    };
    let problem = crate::harness::assert_problem(
        create(json!([5, 6, 7, 8])).await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["field"], "reminder_offsets_minutes");
    let r = create(json!([])).await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let created: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) FROM events WHERE id = '{}' AND reminder_offsets_minutes = '{{}}' AND version = 1",
                created["id"].as_str().unwrap()
            )
        )
        .await,
        1,
        "an event created without reminders has none"
    );
}
