//! A checkout's statements are prepared once per connection
//! (`models::prepared`): a connection that serves one checkout after another
//! runs the same named statements again, instead of sending every `UPDATE`,
//! `ON CONFLICT` insert, insert of several rows and raw statement to be
//! parsed and planned before each run.

use boxoffice_models::bookings::{self, NewBooking};
use boxoffice_models::hold_batch::{self, Answer, Request};
use boxoffice_models::notifications::{self, NewNotification};
use boxoffice_models::users::Role;
use boxoffice_models::workflow_runs::{self, Inserted};
use boxoffice_models::workflow_signals::{self, NewSignal, Recorded};
use boxoffice_models::{checkout_limits, holds, tickets};
use boxoffice_workers::engine::first_step::{self, FIRST_STEP_GRACE};
use boxoffice_workers::engine::{Dispatch, HoldBatcher};
use boxoffice_workflows::checkout::{CheckoutState, Item, STEPS_HOLDING_NOTHING};
use chrono::{Duration, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::fixtures::{SaleEvent, checkout_run, event_on_sale};
use crate::harness::TestApp;

/// How many checkouts the one connection serves.
const ROUNDS: i64 = 3;

#[derive(QueryableByName)]
struct PreparedRow {
    #[diesel(sql_type = Text)]
    statement: String,
    #[diesel(sql_type = BigInt)]
    runs: i64,
}

/// The statements prepared on `conn` and how many times each ran (its custom
/// and generic plans: one per execution).
async fn prepared(conn: &mut AsyncPgConnection) -> Vec<PreparedRow> {
    diesel::sql_query(
        "SELECT statement, (generic_plans + custom_plans)::bigint AS runs
           FROM pg_prepared_statements",
    )
    .load(conn)
    .await
    .unwrap()
}

/// One paid checkout's statements on `conn`, as the API's start, its first
/// step and the steps that confirm it run them.
async fn one_checkout(app: &TestApp, conn: &mut AsyncPgConnection, event: &SaleEvent) {
    let buyer = app.create_user(&[Role::Participant]).await;
    let items = vec![Item {
        ticket_type_id: event.ticket_types[0],
        quantity: 2,
    }];
    let state = CheckoutState::new(buyer.id, event.event_id, items, None, 15);
    let key = format!("prepared-{}", buyer.id);
    let new = checkout_run(&state, Some(&key));
    // The start's transaction.
    let (run, backstop) = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let open = checkout_limits::lock_and_find_open(
                conn,
                buyer.id,
                event.event_id,
                STEPS_HOLDING_NOTHING,
            )
            .await?;
            assert!(open.is_none());
            let due = Some(Utc::now() + FIRST_STEP_GRACE);
            let (inserted, backstop) = workflow_runs::start_within_due(conn, &new, due).await?;
            let Inserted::Created(run) = inserted else {
                panic!("the run existed")
            };
            Ok((run, backstop.unwrap()))
        })
        .await
        .unwrap();
    // Its first step: the hold (through the API's batch, on a pool of its
    // own), the transition and its history.
    let batcher = HoldBatcher::new(app.conns.holds_db.clone());
    let stepped = first_step::take(
        conn,
        &app.ticket_signer(),
        &batcher,
        &run,
        Some(backstop),
        Dispatch::Queue,
    )
    .await
    .unwrap();
    assert_eq!(stepped.step.as_deref(), Some("creating_payment_intent"));
    // The batch of holds itself, here on this connection (the run's seat of
    // the second type).
    let answers = hold_batch::hold_many(
        conn,
        event.ticket_types[1],
        &[Request {
            run_id: run.id,
            quantity: 1,
            expires_at: Utc::now() + Duration::minutes(15),
        }],
    )
    .await
    .unwrap();
    assert!(matches!(answers[..], [Answer::Held(_)]), "{answers:?}");
    // The payment's signal, taken by the run.
    let recorded = workflow_signals::record(
        conn,
        NewSignal {
            run_id: run.id,
            name: "payment_succeeded".into(),
            dedupe_key: format!("prepared:{}", run.id),
            payload: serde_json::json!({}),
        },
    )
    .await
    .unwrap();
    assert!(matches!(recorded, Recorded::New));
    let signal = workflow_signals::pending_for_run(conn, run.id)
        .await
        .unwrap()
        .remove(0);
    workflow_signals::mark_consumed(conn, signal.id)
        .await
        .unwrap();
    // The confirmation: holds sold, the booking, its tickets, its email.
    let converted = holds::convert_for_run(conn, run.id).await.unwrap();
    assert_eq!(converted, 3);
    let (booking, created) = bookings::create_for_run(
        conn,
        &NewBooking {
            id: Uuid::now_v7(),
            run_id: run.id,
            user_id: buyer.id,
            event_id: event.event_id,
            currency: "EUR".into(),
            subtotal_minor: 4000,
            discount_minor: 0,
            total_minor: 4000,
            coupon_id: None,
            payment_intent_id: None,
        },
    )
    .await
    .unwrap();
    assert!(created);
    let issued = tickets::insert_for_booking(
        conn,
        booking.id,
        event.event_id,
        &[tickets::ToIssue {
            ticket_type_id: event.ticket_types[0],
            paid_minor: 2000,
        }; 2],
        &app.ticket_signer(),
    )
    .await
    .unwrap();
    assert_eq!(issued.len(), 2);
    let key = format!("booking:{}:confirmation", booking.id);
    let notification = notifications::enqueue(
        conn,
        NewNotification {
            dedupe_key: &key,
            kind: "booking_confirmation",
            recipient: notifications::Recipient::Address(&buyer.email),
            subject: "Your tickets",
            body_text: "See you there.",
            user_id: Some(buyer.id),
            context: &serde_json::json!({}),
        },
    )
    .await
    .unwrap()
    .unwrap();
    notifications::mark_sent(conn, notification).await.unwrap();
}

#[tokio::test]
async fn a_connection_runs_a_checkouts_statements_prepared_once() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(2000, 20), (500, 20)], 15).await;
    let mut conn = app.raw_conn().await;
    for _ in 0..ROUNDS {
        one_checkout(&app, &mut conn, &event).await;
    }

    let prepared = prepared(&mut conn).await;
    // Each of these ran once per checkout, every time as the same prepared
    // statement. Sent unnamed, it would be missing here: a statement that
    // is not kept is closed after its one run.
    let expected = [
        "lock_and_find_open_checkout",
        r#"INSERT INTO "workflow_runs""#,
        r#"UPDATE "workflow_runs" SET "status""#,
        r#"INSERT INTO "workflow_steps""#,
        "WITH RECURSIVE req AS",
        r#"INSERT INTO "workflow_signals""#,
        r#"UPDATE "workflow_signals" SET "consumed_at""#,
        r#"UPDATE "holds" SET "status""#,
        r#"INSERT INTO "bookings""#,
        r#"INSERT INTO "tickets""#,
        r#"INSERT INTO "notifications""#,
        r#"UPDATE "notifications" SET "status""#,
        r#"INSERT INTO "outbox""#,
        r#"DELETE FROM "outbox""#,
    ];
    for start in expected {
        let runs: Vec<i64> = prepared
            .iter()
            .filter(|p| p.statement.contains(start))
            .map(|p| p.runs)
            .collect();
        assert!(
            runs.iter().any(|&n| n >= ROUNDS),
            "`{start}` ran {runs:?} times as a prepared statement, not once per checkout ({ROUNDS})"
        );
    }
}
