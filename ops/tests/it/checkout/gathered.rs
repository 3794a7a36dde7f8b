//! Checkout starts that arrive together are written together
//! (`api::routes::checkouts::gathered`): each buyer is told what a start alone
//! would have told them, and the batches are counted.

use std::time::Duration;

use boxoffice_models::users::Role;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures::future::join_all;
use serde_json::Value;

use super::fixtures::{
    SaleEvent, count, counters, counting_statements, event_on_sale, gathered_starts, metric, order,
    start, start_all, start_held, statement_calls,
};
use crate::harness::TestApp;

#[tokio::test]
async fn a_flood_of_starts_is_written_in_batches_and_each_buyer_told_as_alone() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1500, 5)], 15).await;
    // The first start reads the sale's terms and holds one seat.
    let first = app.create_user(&[Role::Participant]).await;
    start_held(&app, &first, order(&event, 0, 1)).await;
    let before = app.metrics().await;
    let batches_before = metric(&before, "checkout_start_batches_total ");

    // Sixty buyers at once for the four seats left, one each.
    let mut buyers = Vec::new();
    for _ in 0..60 {
        buyers.push(app.create_user(&[Role::Participant]).await);
    }
    // Every start counts in flight from its arrival to its answer: what the
    // API's payment intents wait on in a flood (`starts_in_flight`).
    let in_flight = app.starts_in_flight();
    let mut most_in_flight = 0;
    let answers = {
        let starts = start_all(&app, &buyers, &event);
        tokio::pin!(starts);
        loop {
            tokio::select! {
                answers = &mut starts => break answers,
                () = tokio::time::sleep(Duration::from_millis(1)) => {
                    most_in_flight = most_in_flight.max(in_flight.count());
                }
            }
        }
    };
    assert!(
        most_in_flight > 1,
        "starts in flight, at most: {most_in_flight}"
    );
    assert_eq!(in_flight.count(), 0, "every start answered");

    let held = answers
        .iter()
        .filter(|a| a["expires_at"].is_string())
        .count();
    let sold_out: Vec<&str> = answers
        .iter()
        .filter(|a| a["status"] == "compensated" && a["error"]["code"] == "sold_out")
        .map(|a| a["run_id"].as_str().unwrap())
        .collect();
    assert_eq!((held, sold_out.len()), (4, 56), "{answers:?}");
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (5, 0, 5),
        "capacity, sold, held"
    );
    // Each sold-out run was decided in its batch, and inserted as it ended
    // (version 1, below): every batch before it had held its winners' seats
    // in its own commit, so it read what they left. Each has its history;
    // the winners' runs each hold their seat, and have no start message.
    let ids = sold_out
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        count(
            &app.db.url,
            &format!(
                "SELECT 1 FROM workflow_runs r WHERE r.id IN ({ids}) AND r.status = 'compensated'
                   AND EXISTS (SELECT 1 FROM workflow_steps s WHERE s.run_id = r.id)"
            )
        )
        .await,
        56
    );
    assert_eq!(
        count(
            &app.db.url,
            "SELECT 1 FROM holds WHERE status = 'active' GROUP BY run_id"
        )
        .await,
        5,
        "one hold per winner"
    );
    assert_eq!(
        count(
            &app.db.url,
            "SELECT 1 FROM outbox WHERE queue = 'advance_run'
              AND available_at < now() + interval '1 minute'"
        )
        .await,
        0,
        "a winner's step was taken in its batch, with no start message (a hold's deadline is 15 minutes away)"
    );
    // Each winner of the flood was held in its batch and inserted as its
    // hold left it: one row version (version 1), with the hold's history.
    assert_eq!(
        count(
            &app.db.url,
            &format!(
                "SELECT 1 FROM workflow_runs r JOIN holds h ON h.run_id = r.id
                  WHERE r.owner_id <> '{}' AND r.version = 1 AND r.created_at = r.updated_at
                    AND EXISTS (SELECT 1 FROM workflow_steps s WHERE s.run_id = r.id AND s.step = 'holding')",
                first.id
            )
        )
        .await,
        4,
        "the four winners, each held in its batch's commit"
    );
    // The funnel counts each of them once.
    assert_eq!(
        count(
            &app.db.url,
            &format!(
                "SELECT outcome FROM analytics_checkouts WHERE event_id = '{}'
                  GROUP BY outcome HAVING (outcome, sum(runs)) IN (('sold_out', 56), ('in_progress', 5))",
                event.event_id
            )
        )
        .await,
        2
    );

    let after = app.metrics().await;
    let gathered =
        |written: &str| gathered_starts(&after, written) - gathered_starts(&before, written);
    let written_once = count(
        &app.db.url,
        &format!(
            "SELECT 1 FROM workflow_runs WHERE id IN ({ids})
               AND version = 1 AND created_at = updated_at"
        ),
    )
    .await;
    assert_eq!(written_once, 56, "every loser decided in its batch");
    assert_eq!(gathered("sold_out"), 56.0, "{after}");
    assert_eq!(gathered("stepped"), 4.0, "{after}");
    assert_eq!(gathered("started") + gathered("alone"), 0.0, "{after}");
    let batches = metric(&after, "checkout_start_batches_total ") - batches_before;
    assert!(
        batches < 60.0,
        "sixty starts at once came in {batches} batches: none was gathered"
    );
}

/// An event on sale with ticket types `types` (price, capacity), whose sale
/// terms the API keeps in memory: one buyer has started a checkout of one
/// seat of its first type (the first start of an event reads the terms).
async fn on_sale_with_terms_kept(app: &TestApp, types: &[(i64, i32)]) -> SaleEvent {
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, types, 15).await;
    let first = app.create_user(&[Role::Participant]).await;
    let r = start(
        &app.base_url,
        &app.client,
        &first,
        order(&event, 0, 1),
        None,
    )
    .await;
    assert_eq!(r.status(), 202, "the sale's terms are now in memory");
    event
}

#[tokio::test]
async fn two_starts_of_one_buyer_at_once_make_one_checkout() {
    let app = TestApp::spawn().await;
    let event = on_sale_with_terms_kept(&app, &[(1500, 50)]).await;

    // Eight buyers each start twice at once, with two keys: both starts of a
    // buyer may land in one batch, or in two.
    let mut buyers = Vec::new();
    for _ in 0..8 {
        buyers.push(app.create_user(&[Role::Participant]).await);
    }
    let statuses = join_all(buyers.iter().flat_map(|buyer| {
        [0, 1].map(|_| async {
            let r = start(&app.base_url, &app.client, buyer, order(&event, 0, 1), None).await;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (buyer.id, status, body)
        })
    }))
    .await;
    for buyer in &buyers {
        let mut theirs: Vec<(u16, Value)> = statuses
            .iter()
            .filter(|(id, _, _)| *id == buyer.id)
            .map(|(_, status, body)| (*status, body.clone()))
            .collect();
        theirs.sort_by_key(|(status, _)| *status);
        assert_eq!(theirs[0].0, 202, "{theirs:?}");
        assert!(theirs[0].1["expires_at"].is_string(), "{theirs:?}");
        assert_eq!(theirs[1].0, 409, "{theirs:?}");
        assert_eq!(theirs[1].1["code"], "checkout_in_progress", "{theirs:?}");
        assert_eq!(theirs[1].1["run_id"], theirs[0].1["run_id"], "{theirs:?}");
    }
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (50, 0, 9)
    );
}

#[tokio::test]
async fn an_order_of_two_ticket_types_in_a_batch_takes_its_step_after_the_commit() {
    let app = TestApp::spawn().await;
    let event = on_sale_with_terms_kept(&app, &[(1500, 10), (900, 10)]).await;
    let before = app.metrics().await;

    // Two lines: the batch inserts the run with its start message, and the
    // request takes its step once the batch has committed.
    let buyer = app.create_user(&[Role::Participant]).await;
    let both = serde_json::json!({
        "event_id": event.event_id,
        "items": [
            { "ticket_type_id": event.ticket_types[0], "quantity": 2 },
            { "ticket_type_id": event.ticket_types[1], "quantity": 3 },
        ],
    });
    let r = start(&app.base_url, &app.client, &buyer, both, None).await;
    assert_eq!(r.status(), 202);
    let answer: Value = r.json().await.unwrap();
    assert!(answer["expires_at"].is_string(), "{answer}");
    let run_id = answer["run_id"].as_str().unwrap();
    assert_eq!(
        count(
            &app.db.url,
            &format!("SELECT 1 FROM holds WHERE run_id = '{run_id}' AND status = 'active'")
        )
        .await,
        2,
        "one hold per ticket type"
    );
    assert_eq!(
        counters(&app.db.url, event.ticket_types[1]).await,
        (10, 0, 3)
    );

    let after = app.metrics().await;
    let delta =
        |written: &str| gathered_starts(&after, written) - gathered_starts(&before, written);
    assert_eq!(
        (delta("started"), delta("stepped"), delta("alone")),
        (1.0, 0.0, 0.0),
        "{after}"
    );
}

/// `workflow_signals::pending_for_run`: a run's waiting signals read, one
/// round trip per run.
const SIGNALS_READ: &str = r#"%FROM "workflow_signals" WHERE (("workflow_signals"."run_id" = $1)%"#;

/// A free checkout is completed by its first step. Taken in its batch, the
/// run was inserted by the batch's own transaction, which no other sees
/// before it commits: no signal can wait for it, and none is read (a run
/// taken alone reads them, one round trip each, and inside the batch that
/// trip would keep the ticket type's row locked).
#[tokio::test]
async fn a_batchs_free_checkouts_complete_without_reading_signals() {
    let app = TestApp::builder().counting_statements().spawn().await;
    let event = on_sale_with_terms_kept(&app, &[(0, 11)]).await;
    let mut conn = counting_statements(&app).await;
    let buyers = join_all((0..30).map(|_| app.create_user(&[Role::Participant]))).await;
    let before = app.metrics().await;
    let reads_before = statement_calls(&mut conn, SIGNALS_READ).await;

    let answers = start_all(&app, &buyers, &event).await;

    let completed = answers
        .iter()
        .filter(|a| a["status"] == "completed")
        .count();
    let sold_out = answers
        .iter()
        .filter(|a| a["status"] == "compensated" && a["error"]["code"] == "sold_out")
        .count();
    assert_eq!((completed, sold_out), (10, 20), "{answers:?}");
    let after = app.metrics().await;
    let gathered =
        |written: &str| gathered_starts(&after, written) - gathered_starts(&before, written);
    assert_eq!(
        gathered("stepped"),
        10.0,
        "each winner taken in its batch: {after}"
    );
    assert_eq!(
        statement_calls(&mut conn, SIGNALS_READ).await - reads_before,
        0,
        "no run of a batch read its signals"
    );
}

/// The writer of checkout starts runs on a thread of its own: a batch is
/// written and committed while the API's runtime (here the test's, on which
/// the API serves) is held up, instead of waiting for it at each of its round
/// trips. In a flood the runtime is held up by the requests being taken in.
#[tokio::test]
async fn a_batch_of_starts_is_written_while_the_apis_runtime_is_held_up() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1500, 5)], 15).await;
    let buyer = app.create_user(&[Role::Participant]).await;

    // The ticket type's row is locked by a connection on a thread of the
    // test's own, so the batch's hold waits: no answer can come before the
    // runtime is held up. The lock is let go from that thread.
    let (locked, is_locked) = tokio::sync::oneshot::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (db_url, type_id) = (app.db.url.clone(), event.ticket_types[0]);
    let holder = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut conn = AsyncPgConnection::establish(&db_url).await.unwrap();
            conn.batch_execute(&format!(
                "BEGIN; SELECT 1 FROM ticket_types WHERE id = '{type_id}' FOR UPDATE"
            ))
            .await
            .unwrap();
            locked.send(()).unwrap();
            released.recv().unwrap();
            conn.batch_execute("COMMIT").await.unwrap();
        });
    });
    is_locked.await.unwrap();

    let starting = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 1),
        None,
    );
    tokio::pin!(starting);
    // Until the batch's hold waits for the lock: the start is with the
    // writer, past everything the API's runtime does for it.
    let hold_waiting = "SELECT 1 FROM pg_stat_activity
                         WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::select! {
                _ = &mut starting => panic!("answered while the ticket type was locked"),
                () = tokio::time::sleep(Duration::from_millis(1)) => {
                    if count(&app.db.url, hold_waiting).await == 1 {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "the start's hold never waited for the lock");

    // The lock is let go, and the runtime held up for two seconds: nothing
    // on it runs meanwhile.
    release.send(()).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let free_again = chrono::Utc::now();
    holder.join().unwrap();

    let r = starting.await;
    assert_eq!(r.status(), 202);
    let answer: Value = r.json().await.unwrap();
    assert!(answer["expires_at"].is_string(), "{answer}");
    let run_id = answer["run_id"].as_str().unwrap();
    let held_before = count(
        &app.db.url,
        &format!(
            "SELECT 1 FROM holds WHERE run_id = '{run_id}'
               AND pg_xact_commit_timestamp(xmin) < '{}'::timestamptz",
            free_again.to_rfc3339()
        ),
    )
    .await;
    assert_eq!(
        held_before, 1,
        "the batch's commit came after the runtime was free again"
    );
}
