//! A checkout start counts in flight from the moment the API takes it in
//! (`api::routes::checkouts::taken_in`), not only once it is with the writer
//! of starts: the payment intents of a flood's first winners wait on that
//! count, and must see the buyers still being taken in behind them.

use std::time::Duration;

use boxoffice_models::users::Role;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::fixtures::{SaleEvent, count, event_on_sale, order, start};
use crate::harness::TestApp;

/// An API with an event on sale: one ticket type of five seats.
async fn on_sale() -> (TestApp, SaleEvent) {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1500, 5)], 15).await;
    (app, event)
}

/// A `POST /v1/checkouts` whose body comes in two parts: the head and the
/// body's first half now, the rest when told.
async fn half_sent(app: &TestApp, bearer: &str, body: &str) -> (TcpStream, String) {
    let addr = app.base_url.trim_start_matches("http://");
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/checkouts HTTP/1.1\r\nhost: {addr}\r\nauthorization: {bearer}\r\n\
         idempotency-key: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        uuid::Uuid::new_v4(),
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    socket
        .write_all(format!("{head}{first}").as_bytes())
        .await
        .unwrap();
    (socket, rest.to_owned())
}

/// Sends the rest of the body and reads the whole answer: its status and
/// its JSON body.
async fn finish(mut socket: TcpStream, rest: &str) -> (u16, Value) {
    socket.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // `connection: close` answers are not chunked by the API; a chunked one
    // would start with its size line.
    let json = body.find('{').map_or(Value::Null, |at| {
        let end = body.rfind('}').map_or(body.len(), |e| e + 1);
        serde_json::from_str(&body[at..end]).unwrap_or(Value::Null)
    });
    (status, json)
}

/// Waits up to five seconds for the count of starts in flight to be `n`.
async fn count_reaches(app: &TestApp, n: usize) -> bool {
    let in_flight = app.starts_in_flight();
    tokio::time::timeout(Duration::from_secs(5), async {
        while in_flight.count() != n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_start_counts_in_flight_while_it_is_taken_in_until_its_answer() {
    let (app, event) = on_sale().await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let body = order(&event, 0, 1).to_string();

    // Half of its body in: the start is still being taken in, nowhere near
    // the writer, and counts in flight already.
    let (socket, rest) = half_sent(&app, &buyer.bearer(), &body).await;
    assert!(
        count_reaches(&app, 1).await,
        "a start still being taken in was not counted in flight: {}",
        app.starts_in_flight().count()
    );
    // Held there for a moment, it stays counted, and nothing is written.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.starts_in_flight().count(), 1);
    assert_eq!(count(&app.db.url, "SELECT 1 FROM workflow_runs").await, 0);

    let (status, answer) = finish(socket, &rest).await;
    assert_eq!(status, 202, "{answer}");
    assert!(answer["expires_at"].is_string(), "{answer}");
    assert!(
        count_reaches(&app, 0).await,
        "the answered start still counts in flight: {}",
        app.starts_in_flight().count()
    );
}

#[tokio::test]
async fn a_start_refused_while_taken_in_no_longer_counts() {
    let (app, event) = on_sale().await;
    let buyer = app.create_user(&[Role::Participant]).await;
    // A body the API refuses once it has all of it: no such field.
    let mut refused = order(&event, 0, 1);
    refused["seat"] = Value::from("A1");

    let (socket, rest) = half_sent(&app, &buyer.bearer(), &refused.to_string()).await;
    assert!(count_reaches(&app, 1).await, "the start was not counted");
    let (status, answer) = finish(socket, &rest).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        count_reaches(&app, 0).await,
        "a refused start still counts in flight: {}",
        app.starts_in_flight().count()
    );

    // A bearer that is no token at all: refused before its body is read.
    let (socket, rest) =
        half_sent(&app, "Bearer not-a-token", &order(&event, 0, 1).to_string()).await;
    let (status, _) = finish(socket, &rest).await;
    assert_eq!(status, 401);
    assert_eq!(app.starts_in_flight().count(), 0);
    assert_eq!(count(&app.db.url, "SELECT 1 FROM workflow_runs").await, 0);
}

/// A batch waits for the starts on their way to the writer, but a start that
/// is slow to come (half its body in) holds another buyer's batch up for a
/// moment only (`ON_THEIR_WAY`), not until it comes.
#[tokio::test]
async fn a_start_slow_to_come_holds_up_anothers_batch_for_a_moment_only() {
    let (app, event) = on_sale().await;
    let slow = app.create_user(&[Role::Participant]).await;
    let quick = app.create_user(&[Role::Participant]).await;

    let (socket, rest) = half_sent(&app, &slow.bearer(), &order(&event, 0, 1).to_string()).await;
    assert!(
        count_reaches(&app, 1).await,
        "the slow start was not counted"
    );
    let answered = tokio::time::timeout(
        Duration::from_secs(5),
        start(
            &app.base_url,
            &app.client,
            &quick,
            order(&event, 0, 1),
            None,
        ),
    )
    .await
    .expect("the quick start waited for the slow one");
    assert_eq!(answered.status(), 202);
    let answer: Value = answered.json().await.unwrap();
    assert!(answer["expires_at"].is_string(), "{answer}");

    let (status, answer) = finish(socket, &rest).await;
    assert_eq!(status, 202, "{answer}");
    assert!(answer["expires_at"].is_string(), "{answer}");
    assert_eq!(
        count(&app.db.url, "SELECT 1 FROM holds WHERE status = 'active'").await,
        2
    );
}
