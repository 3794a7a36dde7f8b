//! A checkout's statements are prepared once per connection
//! (`models::prepared`): a connection that serves one checkout after another
//! runs the same named statements again, instead of sending every `UPDATE`,
//! `ON CONFLICT` insert, insert of several rows and raw statement to be
//! parsed and planned before each run. And a prepared statement that runs
//! at every checkout keeps one plan: Postgres plans its first five runs for
//! their values, then keeps a generic plan unless plans for the values look
//! cheaper; a statement whose plan hangs on a bound status or an array's
//! length would be planned again at every run.

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

/// Runs after which Postgres has chosen between a generic plan and planning
/// each run for its values (five custom plans, then the comparison).
const PLAN_ROUNDS: i64 = 8;

/// The statements prepared on `conn`, how many times each ran (its custom
/// and generic plans: one per execution), and how many of those runs were
/// planned for their values.
#[derive(QueryableByName)]
struct PreparedRow {
    #[diesel(sql_type = Text)]
    statement: String,
    #[diesel(sql_type = BigInt)]
    runs: i64,
    #[diesel(sql_type = BigInt)]
    custom: i64,
}

async fn prepared(conn: &mut AsyncPgConnection) -> Vec<PreparedRow> {
    diesel::sql_query(
        "SELECT statement, (generic_plans + custom_plans)::bigint AS runs,
                custom_plans::bigint AS custom
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
        r#"SELECT "holds"."id", "holds"."ticket_type_id", "holds"."quantity" FROM "holds""#,
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

/// The statements prepared on `conn` that ran at each of its
/// [`PLAN_ROUNDS`] checkouts and were planned for their values more than
/// Postgres's five trials (each printed, with its counts).
async fn planned_at_every_run(conn: &mut AsyncPgConnection, when: &str) -> Vec<String> {
    let prepared = prepared(conn).await;
    for row in &prepared {
        println!(
            "{when}: {:>3} runs, {:>3} planned for their values: {:.100}",
            row.runs,
            row.custom,
            row.statement
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    prepared
        .iter()
        .filter(|p| p.runs >= PLAN_ROUNDS && p.custom > 5)
        .map(|p| {
            format!(
                "{when}: {} of {} runs planned: {:.120}",
                p.custom, p.runs, p.statement
            )
        })
        .collect()
}

/// Gives `holds` the pages of a sale's sold holds (2,000 rows) without the
/// statistics autovacuum would take of them: the planner then estimates a
/// run's holds from the table's size, as in a sale's first minutes. The rows
/// only fill pages; they are written with foreign keys and triggers off
/// (`session_replication_role`), closed, so no counter counts them.
async fn fill_holds_without_statistics(conn: &mut AsyncPgConnection) {
    diesel::sql_query("SET session_replication_role = replica")
        .execute(conn)
        .await
        .unwrap();
    diesel::sql_query(
        "INSERT INTO holds (id, run_id, ticket_type_id, quantity, expires_at, status, closed_at)
         SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 1, now(), 'converted', now()
           FROM generate_series(1, 2000)",
    )
    .execute(conn)
    .await
    .unwrap();
    diesel::sql_query("RESET session_replication_role")
        .execute(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_connection_plans_a_checkouts_statements_once_not_at_every_run() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(2000, 40), (500, 40)], 15).await;

    // A sale's tables before autovacuum's first look: rows, no statistics.
    let mut first = app.raw_conn().await;
    fill_holds_without_statistics(&mut first).await;
    for _ in 0..PLAN_ROUNDS {
        one_checkout(&app, &mut first, &event).await;
    }
    let mut replanned = planned_at_every_run(&mut first, "no statistics").await;

    // The same after the statistics are taken, on a connection of its own.
    let mut second = app.raw_conn().await;
    diesel::sql_query("ANALYZE")
        .execute(&mut second)
        .await
        .unwrap();
    for _ in 0..PLAN_ROUNDS {
        one_checkout(&app, &mut second, &event).await;
    }
    replanned.extend(planned_at_every_run(&mut second, "analyzed").await);

    // Every statement run at each checkout was planned for its values at
    // most five times (Postgres's trial), then ran its generic plan.
    assert!(
        replanned.is_empty(),
        "planned again at every run: {replanned:#?}"
    );
    // Among them the two that were planned at every run before: a step's
    // look at its run's active holds, and the delete of its command's
    // backstop message (a statement sent unnamed would be missing here).
    let kept = prepared(&mut second).await;
    for start in [
        r#"SELECT "holds"."id", "holds"."ticket_type_id", "holds"."quantity" FROM "holds""#,
        r#"DELETE FROM "outbox" WHERE ("outbox"."id" = $1)"#,
    ] {
        assert!(
            kept.iter()
                .any(|p| p.statement.contains(start) && p.runs >= PLAN_ROUNDS),
            "`{start}` did not run prepared at every checkout"
        );
    }
}
