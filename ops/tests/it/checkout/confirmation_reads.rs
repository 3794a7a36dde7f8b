//! A paid checkout's confirmation reads nothing it already knows: the
//! delivery of its payment's signal reads no run ahead of its transaction
//! (only a start takes its hold ahead), the step learns in one statement
//! whether the event was cancelled before its sale, takes the event's title
//! from the read that gives its date and venue, looks for no tickets of the
//! booking it has just inserted, and queues the email without a savepoint,
//! its address read by the email's insert. The email job reads the event and
//! the tickets it shows in one statement. A checkout without a coupon looks
//! for no coupon use to make final. Counted by `pg_stat_statements`,
//! from the moment the run waits for its payment to the moment its email is
//! sent; the run is watched in the database, not through the API, whose
//! status reads would be counted too.

use std::time::Duration;

use boxoffice_models::users::Role;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::fixtures::{
    counting_statements, event_on_sale, order, start, started_run, statement_calls,
};
use crate::harness::TestApp;
use crate::harness::wait;

/// What the confirmation used to read, and no longer does.
const NOT_READ: [(&str, &str); 8] = [
    (
        "the run, ahead of the delivery's transaction",
        r#"SELECT "workflow_runs"."id", "workflow_runs"."kind"%LIMIT $2"#,
    ),
    (
        "whether the run's booking exists, apart from the event",
        r#"SELECT EXISTS (SELECT "bookings"."id"%"#,
    ),
    (
        "the event's title, apart from its date and venue",
        r#"SELECT "events"."title" FROM "events"%"#,
    ),
    (
        "the tickets of the booking just inserted",
        r#"SELECT "tickets"."id", "tickets"."booking_id"%"#,
    ),
    ("a savepoint around the email's rows", "SAVEPOINT%"),
    (
        "the buyer's address, apart from the email's insert",
        r#"SELECT "users"."email" FROM "users"%"#,
    ),
    (
        "the email's tickets, apart from its event",
        r#"SELECT "tickets"."id", "tickets"."number"%"#,
    ),
    (
        "a coupon use, for a checkout that reserved none",
        r#"UPDATE "coupon_reservations"%"#,
    ),
];

/// The email job's read of the event, its venue and the booking's tickets.
const EVENT_AND_TICKETS: &str = r#"SELECT "events"."id"%LEFT OUTER JOIN "tickets"%"#;

#[derive(diesel::QueryableByName)]
struct Status {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    step: String,
}

/// Waits, reading the database, until `query` gives `step`.
async fn wait_for(conn: &mut AsyncPgConnection, query: &str, step: &str) -> Status {
    wait::value(Duration::from_secs(20), query, async || {
        let now: Status = diesel::sql_query(query).get_result(conn).await.unwrap();
        (now.step == step).then_some(now)
    })
    .await
}

/// Waits, reading the database, until the run is at `step`.
async fn wait_for_step(conn: &mut AsyncPgConnection, run_id: &str, step: &str) -> Status {
    wait_for(
        conn,
        &format!("SELECT status, step FROM workflow_runs WHERE id = '{run_id}'"),
        step,
    )
    .await
}

#[tokio::test]
async fn a_paid_checkouts_confirmation_reads_nothing_it_already_knows() {
    let app = TestApp::builder().counting_statements().spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(2500, 10)], 15).await;
    let mut stats = counting_statements(&app).await;
    let mut watch = app.raw_conn().await;

    let run_id = started_run(
        start(
            &app.base_url,
            &app.client,
            &buyer,
            order(&event, 0, 2),
            None,
        )
        .await,
    )
    .await;
    wait_for_step(&mut watch, &run_id, "awaiting_payment").await;
    #[derive(diesel::QueryableByName)]
    struct Intent {
        #[diesel(sql_type = diesel::sql_types::Text)]
        intent_id: String,
    }
    let intent: Intent = diesel::sql_query(format!(
        "SELECT state->'payment'->>'intent_id' AS intent_id FROM workflow_runs WHERE id = '{run_id}'"
    ))
    .get_result(&mut watch)
    .await
    .unwrap();

    let mut before = Vec::new();
    for (_, pattern) in NOT_READ {
        before.push(statement_calls(&mut stats, pattern).await);
    }
    let bookings_before = statement_calls(&mut stats, r#"INSERT INTO "bookings"%"#).await;
    let renders_before = statement_calls(&mut stats, EVENT_AND_TICKETS).await;
    sandbox.pay(&intent.intent_id).await;
    let done = wait_for_step(&mut watch, &run_id, "completed").await;
    assert_eq!(done.status, "completed");
    // The email job's reads are in the window too.
    wait_for(
        &mut watch,
        "SELECT status, status AS step FROM notifications WHERE kind = 'booking_confirmation'",
        "sent",
    )
    .await;

    let mut read = Vec::new();
    for ((what, pattern), before) in NOT_READ.iter().zip(before) {
        let calls = statement_calls(&mut stats, pattern).await - before;
        println!("{what}: {calls} statements");
        if calls != 0 {
            read.push(format!("{what} ({calls}: {pattern})"));
        }
    }
    assert!(read.is_empty(), "read again: {read:?}");
    // The window did hold the confirmation, and the email's one read.
    assert_eq!(
        statement_calls(&mut stats, r#"INSERT INTO "bookings"%"#).await - bookings_before,
        1
    );
    assert_eq!(
        statement_calls(&mut stats, EVENT_AND_TICKETS).await - renders_before,
        1
    );
    // Its email still says what, when and where, from the one read.
    #[derive(diesel::QueryableByName)]
    struct Body {
        #[diesel(sql_type = diesel::sql_types::Text)]
        subject: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        body_text: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        recipient: String,
    }
    let email: Body = diesel::sql_query(
        "SELECT subject, body_text, recipient FROM notifications WHERE kind = 'booking_confirmation'",
    )
    .get_result(&mut watch)
    .await
    .unwrap();
    assert_eq!(email.subject, "Your tickets for Flash Sale");
    assert_eq!(email.recipient, buyer.email);
    assert!(
        email.body_text.contains("Event: Flash Sale\nWhen: ")
            && email.body_text.contains("Where: Hall, 1 Street"),
        "{}",
        email.body_text
    );
}
