//! A checkout start checks the terms of the event's sale (its status, dates
//! and limits, its ticket types') from the API's memory, and Postgres
//! announces every change to them (`api/src/routes/checkouts/sale_terms.rs`,
//! migration `000016`): a flood of starts reads the event once, an organizer's
//! change applies to the next start, and the holds' own updates of the ticket
//! types' counters drop nothing.

use boxoffice_models::users::Role;
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use futures::future::join_all;
use reqwest::StatusCode;
use uuid::Uuid;

use super::fixtures::{
    SaleEvent, counting_statements, event_on_sale, gathered_starts, order, start, start_all,
    statement_calls,
};
use crate::change_feed::{HEARD_WITHIN, feed_live, until};
use crate::harness::{TestApp, assert_problem};

/// A new buyer's start of a checkout of `quantity` of the event's ticket type
/// `type_index` (one open checkout per buyer and event: a new buyer each time).
async fn attempt(
    app: &TestApp,
    event: &SaleEvent,
    type_index: usize,
    quantity: i32,
) -> reqwest::Response {
    let buyer = app.create_user(&[Role::Participant]).await;
    let body = order(event, type_index, quantity);
    start(&app.base_url, &app.client, &buyer, body, None).await
}

/// Runs `sql`; with `announced` false the triggers are off for it, as if its
/// notification were lost.
async fn change(conn: &mut AsyncPgConnection, sql: &str, announced: bool) {
    let role = if announced { "origin" } else { "replica" };
    conn.batch_execute(&format!(
        "SET session_replication_role = {role}; {sql}; SET session_replication_role = origin;"
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn a_checkout_start_checks_the_sale_terms_from_memory_until_they_change() {
    let app = TestApp::spawn().await;
    feed_live(&app).await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 100)], 10).await;
    let other = event_on_sale(&app.db.url, organizer.id, &[(0, 100), (0, 100)], 10).await;
    let kept = &app.state.change_feed.views().sale_terms;
    let mut conn = app.raw_conn().await;

    // The first start reads the terms and keeps them.
    assert_eq!(
        attempt(&app, &event, 0, 1).await.status(),
        StatusCode::ACCEPTED
    );
    assert!(kept.get(&event.event_id).is_some(), "the terms are kept");

    // A hold's update of the counters is not a change of the terms. Postgres
    // delivers notifications in commit order, so once a change committed
    // after it is heard, the counters' would have been too.
    let ticket_type = event.ticket_types[0];
    change(
        &mut conn,
        &format!("UPDATE ticket_type_rows SET taken = taken + 1 WHERE id = '{ticket_type}'"),
        true,
    )
    .await;
    assert_eq!(
        attempt(&app, &other, 0, 1).await.status(),
        StatusCode::ACCEPTED
    );
    change(
        &mut conn,
        &format!(
            "UPDATE events SET max_tickets_per_order = 9 WHERE id = '{}'",
            other.event_id
        ),
        true,
    )
    .await;
    until("the other event's change is heard", async || {
        kept.get(&other.event_id).is_none()
    })
    .await;
    assert!(
        kept.get(&event.event_id).is_some(),
        "a hold's update dropped the terms"
    );

    // A change Postgres does not announce is not seen: the start was checked
    // in memory, not in Postgres.
    change(
        &mut conn,
        &format!(
            "UPDATE events SET sales_end_at = now() - interval '1 minute' WHERE id = '{}'",
            event.event_id
        ),
        false,
    )
    .await;
    assert_eq!(
        attempt(&app, &event, 0, 1).await.status(),
        StatusCode::ACCEPTED
    );

    // An announced change is heard at once, and the next start is checked
    // against Postgres's terms.
    change(
        &mut conn,
        &format!(
            "UPDATE events SET status = 'cancelled', cancelled_at = now() WHERE id = '{}'",
            event.event_id
        ),
        true,
    )
    .await;
    let took = until("the cancellation is heard", async || {
        kept.get(&event.event_id).is_none()
    })
    .await;
    println!("sale terms: an event's cancellation was heard by the API after {took:?}");
    assert!(took < HEARD_WITHIN, "took {took:?}");
    assert_problem(attempt(&app, &event, 0, 1).await, 409, "event_cancelled").await;

    // A ticket type's change, and a new ticket type, change the terms too.
    assert_eq!(
        attempt(&app, &other, 1, 2).await.status(),
        StatusCode::ACCEPTED
    );
    change(
        &mut conn,
        &format!(
            "UPDATE ticket_types SET max_per_order = 1 WHERE id = '{}'",
            other.ticket_types[1]
        ),
        true,
    )
    .await;
    until("the ticket type's change is heard", async || {
        kept.get(&other.event_id).is_none()
    })
    .await;
    let refused = assert_problem(attempt(&app, &other, 1, 2).await, 422, "validation_failed").await;
    assert_eq!(refused["max_per_order"], 1, "{refused}");

    let added = Uuid::now_v7();
    change(
        &mut conn,
        &format!(
            "INSERT INTO ticket_types (id, event_id, name, price_minor, currency, capacity, sort_order)
               VALUES ('{added}', '{}', 'Added', 0, 'EUR', 10, 2)",
            other.event_id
        ),
        true,
    )
    .await;
    until("the new ticket type is heard", async || {
        kept.get(&other.event_id).is_none()
    })
    .await;
    let with_added = SaleEvent {
        event_id: other.event_id,
        ticket_types: vec![added],
    };
    assert_eq!(
        attempt(&app, &with_added, 0, 1).await.status(),
        StatusCode::ACCEPTED
    );
}

/// `ticket_types::for_event`, the read of an event's ticket types that only
/// a start reading the terms makes.
const TERMS_READ: &str = r#"%FROM "ticket_types" WHERE ("ticket_types"."event_id" = $1) ORDER BY%"#;

#[tokio::test]
async fn a_flood_of_starts_of_a_new_event_reads_its_terms_once() {
    const BUYERS: usize = 30;
    let app = TestApp::builder().counting_statements().spawn().await;
    feed_live(&app).await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyers = join_all((0..BUYERS).map(|_| app.create_user(&[Role::Participant]))).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 10).await;
    let mut conn = counting_statements(&app).await;

    let before = statement_calls(&mut conn, TERMS_READ).await;
    let metrics_before = app.metrics().await;
    let answers = start_all(&app, &buyers, &event).await;
    let reads = statement_calls(&mut conn, TERMS_READ).await - before;
    let metrics = app.metrics().await;
    let gathered = |written: &str| {
        gathered_starts(&metrics, written) - gathered_starts(&metrics_before, written)
    };
    let held = answers
        .iter()
        .filter(|a| a["expires_at"].is_string())
        .count();
    println!(
        "sale terms: {BUYERS} starts at once of a new event ({held} held) read its terms {reads} time(s)"
    );
    assert_eq!(held, 10, "{answers:?}");
    assert_eq!(reads, 1, "the starts took turns to read the terms");
    // Then each was written with the others: the starts that waited for the
    // terms did not each go alone, on a pooled connection of its own.
    assert_eq!(
        (gathered("stepped"), gathered("sold_out")),
        (10.0, 20.0),
        "{metrics}"
    );
    assert_eq!(gathered("started") + gathered("alone"), 0.0, "{metrics}");
}
