//! The group commit of holds: one statement holds a batch of runs on one ticket
//! type (`hold_batch::hold_many`), and each process's `HoldBatcher` gathers the
//! runs about to hold into such batches. Capacity is never oversold, each run
//! learns its own outcome, and the order of arrival decides.

use boxoffice_models::bookings;
use boxoffice_models::hold_batch::{self, Answer, Request};
use boxoffice_models::holds::{self, HoldOutcome, Line};
use boxoffice_models::schema::ticket_types;
use boxoffice_models::tickets::{self, ToIssue};
use boxoffice_models::users::Role;
use boxoffice_workers::engine::HoldBatcher;
use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::fixtures::{count, counters, event_on_sale};
use crate::harness::TestApp;

/// `n` runs with nothing held yet.
async fn runs(db_url: &str, n: usize) -> Vec<Uuid> {
    let mut conn = AsyncPgConnection::establish(db_url).await.unwrap();
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    diesel::sql_query(
        "INSERT INTO workflow_runs (id, kind, status, step, state)
         SELECT id, 'checkout', 'running', 'holding', '{}' FROM unnest($1::uuid[]) AS id",
    )
    .bind::<diesel::sql_types::Array<SqlUuid>, _>(&ids)
    .execute(&mut conn)
    .await
    .unwrap();
    ids
}

fn requests(runs: &[Uuid], quantities: &[i32]) -> Vec<Request> {
    runs.iter()
        .zip(quantities)
        .map(|(run_id, quantity)| Request {
            run_id: *run_id,
            quantity: *quantity,
            expires_at: Utc::now() + Duration::minutes(15),
        })
        .collect()
}

async fn one_ticket_type(app: &TestApp, capacity: i32) -> Uuid {
    let organizer = app.create_user(&[Role::Organizer]).await;
    event_on_sale(&app.db.url, organizer.id, &[(2500, capacity)], 15)
        .await
        .ticket_types[0]
}

/// A run's answer when it is held `quantity` units at [`one_ticket_type`]'s
/// price.
fn held(ticket_type: Uuid, quantity: i32) -> Answer {
    Answer::Held(holds::PricedHold {
        ticket_type_id: ticket_type,
        quantity,
        unit_price_minor: 2500,
        currency: "EUR".into(),
    })
}

/// `run` holds `quantity` units of `ticket_type` alone, before any batch.
async fn hold_alone(conn: &mut AsyncPgConnection, run: Uuid, ticket_type: Uuid, quantity: i32) {
    let line = Line {
        ticket_type_id: ticket_type,
        quantity,
    };
    let outcome = holds::hold(conn, run, &[line], Utc::now() + Duration::minutes(15))
        .await
        .unwrap();
    assert!(matches!(outcome, HoldOutcome::Held(_)));
}

async fn inconsistencies(app: &TestApp) -> usize {
    let mut conn = app.raw_conn().await;
    holds::inconsistencies(&mut conn).await.unwrap().len()
}

#[tokio::test]
async fn a_batch_gives_each_run_its_units_in_order_while_they_last() {
    let app = TestApp::spawn().await;
    let ticket_type = one_ticket_type(&app, 5).await;
    let runs = runs(&app.db.url, 4).await;

    let mut conn = app.raw_conn().await;
    let answers = hold_batch::hold_many(&mut conn, ticket_type, &requests(&runs, &[2, 2, 2, 1]))
        .await
        .unwrap();

    // 2 and 2 fit; the third 2 does not (1 left); the 1 after it still does.
    assert_eq!(
        answers,
        vec![
            held(ticket_type, 2),
            held(ticket_type, 2),
            Answer::Refused { available: 0 },
            held(ticket_type, 1),
        ]
    );
    assert_eq!(counters(&app.db.url, ticket_type).await, (5, 0, 5));
    assert_eq!(inconsistencies(&app).await, 0);
}

/// A batch as large as the batcher's, of mixed quantities and with a run in
/// its middle that holds already, answers each run as a walk of them one by
/// one, in order, would.
#[tokio::test]
async fn a_full_batch_of_mixed_quantities_is_answered_as_runs_one_by_one_would_be() {
    const CAPACITY: i32 = 300;
    let app = TestApp::spawn().await;
    let ticket_type = one_ticket_type(&app, CAPACITY).await;
    let runs = runs(&app.db.url, 256).await;
    // 1 to 4 units each, in an order that leaves gaps a later, smaller run
    // still fits into once the larger ones stop fitting.
    let quantities: Vec<i32> = (0..256).map(|i| 1 + (i * 7 + i / 5) % 4).collect();
    let mut conn = app.raw_conn().await;
    let holding_already = 100;
    hold_alone(
        &mut conn,
        runs[holding_already],
        ticket_type,
        quantities[holding_already],
    )
    .await;

    let answers = hold_batch::hold_many(&mut conn, ticket_type, &requests(&runs, &quantities))
        .await
        .unwrap();

    // The same runs, one by one.
    let mut left = CAPACITY - quantities[holding_already];
    let fits: Vec<Option<bool>> = quantities
        .iter()
        .enumerate()
        .map(|(i, &quantity)| {
            if i == holding_already {
                return None;
            }
            let fits = quantity <= left;
            if fits {
                left -= quantity;
            }
            Some(fits)
        })
        .collect();
    assert!(left < 4, "the seats ran out within the batch ({left} left)");
    let refused = fits.iter().filter(|f| **f == Some(false)).count();
    let smaller_after_refused = fits
        .iter()
        .zip(&quantities)
        .skip_while(|(f, _)| **f != Some(false))
        .filter(|(f, _)| **f == Some(true))
        .count();
    assert!(
        refused > 10 && smaller_after_refused > 0,
        "{refused}, {smaller_after_refused}"
    );
    let expected: Vec<Answer> = fits
        .iter()
        .zip(&quantities)
        .map(|(fits, &quantity)| match fits {
            None => Answer::Existing,
            Some(true) => held(ticket_type, quantity),
            Some(false) => Answer::Refused { available: left },
        })
        .collect();
    assert_eq!(answers, expected);
    assert_eq!(
        counters(&app.db.url, ticket_type).await,
        (CAPACITY, 0, CAPACITY - left)
    );
    assert_eq!(inconsistencies(&app).await, 0);
}

#[tokio::test]
async fn a_run_that_holds_already_takes_nothing_more() {
    let app = TestApp::spawn().await;
    let ticket_type = one_ticket_type(&app, 10).await;
    let runs = runs(&app.db.url, 2).await;
    let mut conn = app.raw_conn().await;
    hold_alone(&mut conn, runs[0], ticket_type, 3).await;

    let answers = hold_batch::hold_many(&mut conn, ticket_type, &requests(&runs, &[3, 4]))
        .await
        .unwrap();

    assert_eq!(answers[0], Answer::Existing);
    assert!(matches!(answers[1], Answer::Held(_)), "{answers:?}");
    assert_eq!(counters(&app.db.url, ticket_type).await, (10, 0, 7));
    assert_eq!(inconsistencies(&app).await, 0);
}

/// Eight connections race batches of twenty runs onto one row of 100 seats.
#[tokio::test]
async fn racing_batches_hold_exactly_the_capacity() {
    let app = TestApp::spawn().await;
    let ticket_type = one_ticket_type(&app, 100).await;
    let all = runs(&app.db.url, 160).await;

    let tasks: Vec<_> = all
        .chunks(20)
        .map(|chunk| {
            let (url, batch) = (app.db.url.clone(), requests(chunk, &[1; 20]));
            tokio::spawn(async move {
                let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
                hold_batch::hold_many(&mut conn, ticket_type, &batch)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut held = 0;
    let mut refused = 0;
    for task in tasks {
        for answer in task.await.unwrap() {
            match answer {
                Answer::Held(_) => held += 1,
                Answer::Refused { .. } => refused += 1,
                Answer::Existing => panic!("no run held before"),
            }
        }
    }

    assert_eq!((held, refused), (100, 60));
    assert_eq!(counters(&app.db.url, ticket_type).await, (100, 0, 100));
    assert_eq!(inconsistencies(&app).await, 0);
}

#[derive(diesel::QueryableByName)]
struct Statements {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// 300 runs of one process ask at once for 50 seats: the batcher answers each,
/// sells nothing twice, and takes far fewer statements than runs (the holds of
/// one statement share its transaction's start time).
#[tokio::test]
async fn the_batcher_holds_a_flood_of_runs_in_few_statements() {
    let app = TestApp::spawn().await;
    let ticket_type = one_ticket_type(&app, 50).await;
    let all = runs(&app.db.url, 300).await;
    let batcher = HoldBatcher::new(app.pool().clone());
    let expires_at = Utc::now() + Duration::minutes(15);

    let line = Line {
        ticket_type_id: ticket_type,
        quantity: 1,
    };
    let tasks: Vec<_> = all
        .iter()
        .map(|run_id| {
            let (batcher, run_id) = (batcher.clone(), *run_id);
            tokio::spawn(async move { batcher.hold(run_id, line, expires_at).await.unwrap() })
        })
        .collect();
    let mut held = 0;
    for task in tasks {
        match task.await.unwrap() {
            HoldOutcome::Held(_) => held += 1,
            HoldOutcome::Refused { available, .. } => assert_eq!(available, 0),
        }
    }

    assert_eq!(held, 50);
    assert_eq!(counters(&app.db.url, ticket_type).await, (50, 0, 50));
    assert_eq!(inconsistencies(&app).await, 0);
    // Asked again, every run gets what it got the first time.
    for run_id in &all[..20] {
        let again = batcher.hold(*run_id, line, expires_at).await.unwrap();
        let mut conn = app.raw_conn().await;
        let holds_it: Statements = diesel::sql_query(
            "SELECT count(*)::bigint AS n FROM holds WHERE run_id = $1 AND status = 'active'",
        )
        .bind::<SqlUuid, _>(*run_id)
        .get_result(&mut conn)
        .await
        .unwrap();
        assert_eq!(matches!(again, HoldOutcome::Held(_)), holds_it.n == 1);
    }
    assert_eq!(counters(&app.db.url, ticket_type).await, (50, 0, 50));
    let mut conn = app.raw_conn().await;
    let statements: Statements = diesel::sql_query(
        "SELECT count(DISTINCT created_at)::bigint AS n FROM holds WHERE ticket_type_id = $1",
    )
    .bind::<SqlUuid, _>(ticket_type)
    .get_result(&mut conn)
    .await
    .unwrap();
    assert!(
        statements.n < 50,
        "50 holds took {} statements",
        statements.n
    );
}

/// A sale's transaction counts its hold sold at its commit, on the type's
/// sales rows: other runs hold seats of the same type without waiting for it.
#[tokio::test]
async fn a_sale_locks_its_ticket_type_only_at_commit() {
    let app = TestApp::spawn().await;
    let ticket_type = one_ticket_type(&app, 10).await;
    let runs = runs(&app.db.url, 2).await;
    let line = Line {
        ticket_type_id: ticket_type,
        quantity: 2,
    };
    let expires_at = Utc::now() + Duration::minutes(15);
    let mut seller = app.raw_conn().await;
    holds::hold(&mut seller, runs[0], &[line], expires_at)
        .await
        .unwrap();

    let url = app.db.url.clone();
    let other_run = runs[1];
    seller
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            assert_eq!(holds::convert_for_run(conn, runs[0]).await?, 2);
            // Another run, on its own connection, while the sale is open.
            let mut other = AsyncPgConnection::establish(&url).await.unwrap();
            diesel::sql_query("SET lock_timeout = '2s'")
                .execute(&mut other)
                .await
                .unwrap();
            let held = holds::hold(&mut other, other_run, &[line], expires_at)
                .await
                .expect("a hold does not wait for an open sale of its type");
            assert!(matches!(held, HoldOutcome::Held(_)));
            Ok(())
        })
        .await
        .unwrap();

    // At its commit the sale moved its units: 2 sold, the other run's 2 held.
    assert_eq!(counters(&app.db.url, ticket_type).await, (10, 2, 2));
    assert_eq!(inconsistencies(&app).await, 0);
}

/// A batch of holds locks its ticket type's row as an update of its counters
/// does (`FOR NO KEY UPDATE`). A sale of the same type writes its hold's
/// conversion, its booking and its tickets (whose foreign key takes a
/// key-share lock on that row) and commits while the batch is open: a sale
/// leaves `taken` as it is, and counts its units and tickets on the type's
/// sales rows, not on its row. (When the sale moved `held` to `sold` on the
/// row at its commit, that commit waited for the batch's, and a flood's sales
/// of one type followed each other one commit's flush at a time.)
#[tokio::test]
async fn a_sale_commits_while_a_batch_of_holds_is_open() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[]).await;
    let sale = event_on_sale(&app.db.url, organizer.id, &[(2500, 10)], 15).await;
    let ticket_type = sale.ticket_types[0];
    let runs = runs(&app.db.url, 2).await;
    let line = Line {
        ticket_type_id: ticket_type,
        quantity: 2,
    };
    let mut seller = app.raw_conn().await;
    holds::hold(
        &mut seller,
        runs[0],
        &[line],
        Utc::now() + Duration::minutes(15),
    )
    .await
    .unwrap();
    diesel::sql_query("SET lock_timeout = '2s'")
        .execute(&mut seller)
        .await
        .unwrap();
    let signer = app.ticket_signer();
    let new_booking = bookings::NewBooking {
        id: Uuid::now_v7(),
        run_id: runs[0],
        user_id: buyer.id,
        event_id: sale.event_id,
        currency: "EUR".into(),
        subtotal_minor: 5000,
        discount_minor: 0,
        total_minor: 5000,
        coupon_id: None,
        payment_intent_id: None,
    };
    let to_issue = [ToIssue {
        ticket_type_id: ticket_type,
        paid_minor: 2500,
    }; 2];

    let mut batch = app.raw_conn().await;
    let mut onlooker = app.raw_conn().await;
    batch
        .transaction::<_, diesel::result::Error, _>(async |batch_conn| {
            let answers =
                hold_batch::hold_many(batch_conn, ticket_type, &requests(&runs[1..], &[3])).await?;
            assert!(matches!(answers[..], [Answer::Held(_)]));
            // The whole sale, commit included, while the batch keeps the row locked.
            seller
                .transaction::<_, diesel::result::Error, _>(async |sale_conn| {
                    assert_eq!(holds::convert_for_run(sale_conn, runs[0]).await?, 2);
                    let (booking, _) = bookings::create_for_run(sale_conn, &new_booking).await?;
                    let issued = tickets::insert_for_booking(
                        sale_conn,
                        booking.id,
                        sale.event_id,
                        &to_issue,
                        &signer,
                    )
                    .await
                    .expect("a sale's tickets do not wait for an open batch of holds");
                    assert_eq!(issued.len(), 2);
                    Ok(())
                })
                .await
                .expect("a sale commits while a batch of holds is open");
            // Committed: others see it sold, the batch's units not yet held.
            let seen: (i32, i32, i64) = ticket_types::table
                .find(ticket_type)
                .select((
                    ticket_types::sold,
                    ticket_types::held,
                    ticket_types::tickets_issued,
                ))
                .get_result(&mut onlooker)
                .await?;
            assert_eq!(seen, (2, 0, 2));
            Ok(())
        })
        .await
        .unwrap();

    // Both committed: 2 sold, the batch's 3 held, 2 tickets issued.
    assert_eq!(counters(&app.db.url, ticket_type).await, (10, 2, 3));
    let issued = count(
        &app.db.url,
        &format!("SELECT 1 FROM tickets WHERE ticket_type_id = '{ticket_type}'"),
    )
    .await;
    assert_eq!(issued, 2);
    assert_eq!(inconsistencies(&app).await, 0);
}
