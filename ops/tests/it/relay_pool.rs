//! The outbox relay moves messages to Redis while every connection of the
//! jobs' pool is taken, as when a burst of steps waits on one hot ticket
//! type's row lock after an outage: it has connections of its own, so the
//! steps it feeds are never stalled behind the steps it has to feed.

use std::time::{Duration, Instant};

use boxoffice_models::notifications::{SEND_EMAIL_QUEUE, SendEmail};
use boxoffice_models::outbox;
use boxoffice_models::schema::outbox as outbox_table;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::harness::TestApp;

#[tokio::test]
async fn the_relay_moves_messages_while_every_job_connection_is_taken() {
    let app = TestApp::spawn().await;
    app.start_workers("http://127.0.0.1:9");
    // Every connection the jobs (and this test's API) draw from.
    let taken = app.take_every_connection().await;

    let mut conn = app.raw_conn().await;
    let id = outbox::push(
        &conn,
        SEND_EMAIL_QUEUE,
        &SendEmail {
            notification_id: uuid::Uuid::now_v7(),
        },
        None,
    )
    .await
    .unwrap();
    let started = Instant::now();
    loop {
        let left: i64 = outbox_table::table
            .filter(outbox_table::id.eq(id))
            .count()
            .get_result(&mut conn)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the message stayed in the outbox while the jobs' pool was taken"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "relayed in {:?} with all {} job connections taken",
        started.elapsed(),
        taken.len()
    );
    drop(taken);
}
