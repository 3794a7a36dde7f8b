//! The API takes a new checkout's first step, its hold, as it starts the run
//! (`workers::engine::first_step`): the `POST` answers with the decision. No
//! worker runs in these tests unless one is started: what the answer says is
//! the API's own doing.

use std::time::Duration;

use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::users::Role;
use boxoffice_models::workflow_runs::{self, Inserted, Run};
use boxoffice_workers::engine::first_step::{self, FIRST_STEP_GRACE};
use boxoffice_workers::engine::{Advanced, Dispatch, HoldBatcher};
use boxoffice_workflows::checkout::{CheckoutState, Item};
use chrono::Utc;
use diesel_async::AsyncPgConnection;
use serde_json::Value;
use uuid::Uuid;

use super::fixtures::{
    SaleEvent, cancel, checkout_run, count, counters, event_on_sale, is_finished, order, start,
    start_all, start_held, wait_for, waiting_checkout,
};
use crate::harness::TestApp;
use crate::harness::users::TestUser;
use crate::system::poison::{cure, poison};

/// Outbox messages of `queue` for `run_id`; `due_now` picks those already
/// due, otherwise those due later.
fn messages(queue: &str, run_id: &str, due_now: bool) -> String {
    let when = if due_now {
        "available_at <= now()"
    } else {
        "available_at > now()"
    };
    format!(
        "SELECT 1 FROM outbox WHERE queue = '{queue}' AND payload->>'run_id' = '{run_id}' AND {when}"
    )
}

/// First steps taken as the API takes them, their remote commands left to
/// the workers (`Dispatch::Queue`).
struct ApiSteps {
    signer: TicketSigner,
    batcher: HoldBatcher,
}

impl ApiSteps {
    fn of(app: &TestApp) -> Self {
        ApiSteps {
            signer: app.ticket_signer(),
            batcher: HoldBatcher::new(app.conns.holds_db.clone()),
        }
    }

    async fn take(
        &self,
        conn: &mut AsyncPgConnection,
        run: &Run,
        backstop: Option<i64>,
    ) -> anyhow::Result<Advanced> {
        first_step::take(
            conn,
            &self.signer,
            &self.batcher,
            run,
            backstop,
            Dispatch::Queue,
        )
        .await
    }
}

/// A buyer's checkout of `quantity` seats of a ticket type at `price_minor`
/// (10 seats), started over HTTP with the `Idempotency-Key` `key`: the buyer,
/// the event and the 202 answer.
async fn checkout(
    app: &TestApp,
    price_minor: i64,
    quantity: i32,
    key: &str,
) -> (TestUser, SaleEvent, Value) {
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(price_minor, 10)], 15).await;
    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, quantity),
        Some(key),
    )
    .await;
    assert_eq!(r.status(), 202);
    let body = r.json().await.unwrap();
    (buyer, event, body)
}

#[tokio::test]
async fn the_answer_to_a_checkout_holds_its_seats_and_its_start_message_is_gone() {
    let app = TestApp::spawn().await;
    let (buyer, event, body) = checkout(&app, 2000, 3, "first-step-1").await;
    let run_id = body["run_id"].as_str().unwrap().to_owned();

    assert_eq!(body["status"], "running", "{body}");
    assert_eq!(body["step"], "creating_payment_intent", "{body}");
    let expires_at: chrono::DateTime<Utc> = body["expires_at"].as_str().unwrap().parse().unwrap();
    let minutes = (expires_at - Utc::now()).num_minutes();
    assert!(
        (14..=15).contains(&minutes),
        "held for {minutes} min: {body}"
    );
    assert_eq!(body["amount_minor"], 6000, "{body}");
    assert!(body["error"].is_null(), "{body}");
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 0, 3)
    );
    // The start message was the backstop, deleted once the step was taken;
    // the payment intent is for a worker, due at once.
    assert_eq!(
        count(&app.db.url, &messages("advance_run", &run_id, false)).await
            + count(&app.db.url, &messages("advance_run", &run_id, true)).await,
        0
    );
    assert_eq!(
        count(&app.db.url, &messages("run_effect", &run_id, true)).await,
        1
    );
    // The status route says the same.
    let view: Value = app
        .client
        .get(app.url(&format!("/v1/workflows/{run_id}")))
        .header("authorization", buyer.bearer())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["step"], "creating_payment_intent", "{view}");
    assert_eq!(view["expires_at"], body["expires_at"], "{view}");

    // A retry of the key answers with the run as it is: the same hold.
    let again: Value = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 3),
        Some("first-step-1"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(again["run_id"], body["run_id"], "{again}");
    assert_eq!(again["expires_at"], body["expires_at"], "{again}");
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 0, 3)
    );
}

#[tokio::test]
async fn a_flood_of_checkouts_learns_held_or_sold_out_from_the_answers() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1500, 10)], 15).await;
    let mut buyers = Vec::new();
    for _ in 0..40 {
        buyers.push(app.create_user(&[Role::Participant]).await);
    }

    // Forty buyers at once, for ten seats, one each; no worker runs.
    let answers = start_all(&app, &buyers, &event).await;

    let held = answers
        .iter()
        .filter(|a| a["expires_at"].is_string())
        .count();
    let sold_out = answers
        .iter()
        .filter(|a| a["status"] == "compensated" && a["error"]["code"] == "sold_out")
        .count();
    assert_eq!((held, sold_out), (10, 30), "{answers:?}");
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 0, 10)
    );
    assert_eq!(
        count(
            &app.db.url,
            "SELECT 1 FROM holds WHERE status = 'active' GROUP BY run_id"
        )
        .await,
        10,
        "one hold per winner"
    );
}

#[tokio::test]
async fn a_free_checkout_is_completed_by_its_answer() {
    let app = TestApp::spawn().await;
    let (_buyer, event, body) = checkout(&app, 0, 2, "free-1").await;
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(body["ticket_ids"].as_array().unwrap().len(), 2, "{body}");
    assert!(body["booking_id"].is_string(), "{body}");
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 2, 0)
    );
}

/// A run created as the API creates it: its start message due after the grace.
async fn run_with_backstop(
    app: &TestApp,
    event_id: Uuid,
    ticket_type: Uuid,
) -> (TestUser, Run, i64) {
    let buyer = app.create_user(&[Role::Participant]).await;
    let state = CheckoutState::new(
        buyer.id,
        event_id,
        vec![Item {
            ticket_type_id: ticket_type,
            quantity: 2,
        }],
        None,
        15,
    );
    let new = checkout_run(&state, None);
    let mut conn = app.pool().get().await.unwrap();
    let (inserted, backstop) =
        workflow_runs::start_within_due(&mut conn, &new, Some(Utc::now() + FIRST_STEP_GRACE))
            .await
            .unwrap();
    let Inserted::Created(run) = inserted else {
        panic!("the run existed")
    };
    (buyer, run, backstop.unwrap())
}

#[tokio::test]
async fn a_first_step_that_fails_hands_its_run_to_the_workers_at_once() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 15).await;
    let ticket_type = event.ticket_types[0];
    let (owner, run, backstop) = run_with_backstop(&app, event.event_id, ticket_type).await;
    let run_id = run.id;
    let id = run_id.to_string();
    assert_eq!(
        count(&app.db.url, &messages("advance_run", &id, false)).await,
        1
    );

    // The step cannot read the run's state (as after a bad deploy).
    poison(&app, &id).await;
    let steps = ApiSteps::of(&app);
    let mut api_conn = app.pool().get().await.unwrap();
    let failed = steps.take(&mut api_conn, &run, Some(backstop)).await;
    assert!(failed.is_err(), "{failed:?}");

    // A start message due at once stands in for the step.
    assert_eq!(
        count(&app.db.url, &messages("advance_run", &id, true)).await,
        1
    );
    // The hold taken ahead of the step's transaction is the run's.
    assert_eq!(counters(&app.db.url, ticket_type).await, (10, 0, 2));

    // Once the state reads again, a worker takes the step without waiting
    // for the backstop, adopts that hold, and the free checkout completes.
    cure(&app, &id).await;
    app.start_workers("http://127.0.0.1:1");
    let done = wait_for(&app, &owner, &id, Duration::from_secs(10), is_finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(counters(&app.db.url, ticket_type).await, (10, 2, 0));
    assert_eq!(
        count(
            &app.db.url,
            &format!("SELECT 1 FROM holds WHERE run_id = '{run_id}'")
        )
        .await,
        1,
        "the hold taken ahead was adopted, not taken twice"
    );
}

#[tokio::test]
async fn a_first_step_taken_drops_its_backstop_and_a_retry_changes_nothing() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 15).await;
    let ticket_type = event.ticket_types[0];
    let (_owner, run, backstop) = run_with_backstop(&app, event.event_id, ticket_type).await;
    let run_id = run.id;
    let mut api_conn = app.pool().get().await.unwrap();
    let steps = ApiSteps::of(&app);

    let taken = steps
        .take(&mut api_conn, &run, Some(backstop))
        .await
        .unwrap();
    assert_eq!(taken.status.as_deref(), Some("completed"), "{taken:?}");
    let id = run_id.to_string();
    assert_eq!(
        count(&app.db.url, &messages("advance_run", &id, false)).await,
        0
    );

    // A retry of the request reads the run again: past its start, its step
    // holds nothing and changes nothing.
    let fresh = workflow_runs::find(&mut api_conn, run_id)
        .await
        .unwrap()
        .unwrap();
    let again = steps.take(&mut api_conn, &fresh, None).await.unwrap();
    assert!(!again.changed, "{again:?}");
    // A retry that read the run just before the step committed asks for a
    // hold the run has already turned into sold seats: refused, harmlessly.
    let raced = steps.take(&mut api_conn, &run, None).await;
    assert!(raced.is_err(), "{raced:?}");
    assert_eq!(counters(&app.db.url, ticket_type).await, (10, 2, 0));
    assert_eq!(
        count(
            &app.db.url,
            &format!("SELECT 1 FROM tickets WHERE ticket_type_id = '{ticket_type}'")
        )
        .await,
        2
    );
}

/// A run's `status step`, its error code, its history (`step input
/// outcome` per record, in order), and whether its row was written once, as
/// it stands (its first version, never updated).
async fn decided(db_url: &str, run_id: &str) -> (String, String, Vec<String>, bool) {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        step: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        code: String,
        #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
        history: Vec<String>,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        written_once: bool,
    }
    use diesel_async::{AsyncConnection, RunQueryDsl};
    let mut conn = AsyncPgConnection::establish(db_url).await.unwrap();
    let row: Row = diesel::sql_query(
        "SELECT r.status, r.step, coalesce(r.state -> 'error' ->> 'code', '') AS code,
                array(SELECT s.step || ' ' || s.input || ' ' || s.outcome FROM workflow_steps s
                       WHERE s.run_id = r.id ORDER BY s.id) AS history,
                r.version = 1 AND r.created_at = r.updated_at AS written_once
           FROM workflow_runs r WHERE r.id = $1::uuid",
    )
    .bind::<diesel::sql_types::Text, _>(run_id)
    .get_result(&mut conn)
    .await
    .unwrap();
    (
        format!("{} {}", row.status, row.step),
        row.code,
        row.history,
        row.written_once,
    )
}

#[tokio::test]
async fn a_checkout_started_after_the_last_seat_ends_sold_out_in_the_commit_that_creates_it() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1500, 2), (1500, 5)], 15).await;
    let (gone, spare) = (event.ticket_types[0], event.ticket_types[1]);
    let first = app.create_user(&[Role::Participant]).await;
    start_held(&app, &first, order(&event, 0, 2)).await;

    // The last seat is held: the next buyer learns it in the answer.
    let late = app.create_user(&[Role::Participant]).await;
    let late_key = Uuid::new_v4().to_string();
    let r = start(
        &app.base_url,
        &app.client,
        &late,
        order(&event, 0, 1),
        Some(&late_key),
    )
    .await;
    assert_eq!(r.status(), 202);
    let tag = r.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "compensated", "{body}");
    assert_eq!(body["error"]["code"], "sold_out", "{body}");
    let late_run = body["run_id"].as_str().unwrap().to_owned();
    let (status, code, history, written_once) = decided(&app.db.url, &late_run).await;
    assert!(written_once, "inserted decided, never updated");
    // The answer names the row's first and only version: the status route
    // has nothing newer to tell.
    assert_eq!(body["version"], 1, "{body}");
    assert_eq!(tag, format!("\"{}-1\"", late_run.replace('-', "")));
    let read = app
        .client
        .get(app.url(&format!("/v1/workflows/{late_run}")))
        .header("authorization", late.bearer())
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 304);
    // A retry of the request finds that run as it is, and writes nothing.
    let again: Value = start(
        &app.base_url,
        &app.client,
        &late,
        order(&event, 0, 1),
        Some(&late_key),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(again["run_id"], late_run.as_str(), "{again}");
    assert_eq!(again["error"]["code"], "sold_out", "{again}");
    assert_eq!(
        decided(&app.db.url, &late_run).await,
        (status.clone(), code.clone(), history.clone(), true)
    );
    assert_eq!(
        count(
            &app.db.url,
            &format!(
                "SELECT id FROM workflow_runs WHERE owner_id = '{}'",
                late.id
            )
        )
        .await,
        1
    );
    // It needed no start message.
    assert_eq!(
        count(&app.db.url, &messages("advance_run", &late_run, false)).await
            + count(&app.db.url, &messages("advance_run", &late_run, true)).await,
        0
    );

    // A run refused by the batch of holds, as before: created, then stepped.
    let (_owner, run, backstop) = run_with_backstop(&app, event.event_id, gone).await;
    let mut api_conn = app.pool().get().await.unwrap();
    let stepped = ApiSteps::of(&app)
        .take(&mut api_conn, &run, Some(backstop))
        .await
        .unwrap();
    assert_eq!(
        stepped.status.as_deref(),
        Some("compensated"),
        "{stepped:?}"
    );
    let batch = decided(&app.db.url, &run.id.to_string()).await;
    assert!(!batch.3, "the usual path inserts the run, then updates it");
    // The same decision and the same history either way.
    assert_eq!(
        (status, code, history),
        (batch.0, batch.1, batch.2),
        "decided in the start against decided by the batch of holds"
    );

    // An order with a line that fits and one that does not takes nothing.
    let both = serde_json::json!({ "event_id": event.event_id, "items": [
        { "ticket_type_id": spare, "quantity": 1 },
        { "ticket_type_id": gone, "quantity": 1 },
    ]});
    let buyer = app.create_user(&[Role::Participant]).await;
    let body: Value = start(&app.base_url, &app.client, &buyer, both, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"]["code"], "sold_out", "{body}");
    let detail = body["error"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("0 available"), "{body}");
    let mixed = decided(&app.db.url, body["run_id"].as_str().unwrap()).await;
    assert!(mixed.3, "{mixed:?}");
    assert_eq!(counters(&app.db.url, spare).await, (5, 0, 0));
    assert_eq!(counters(&app.db.url, gone).await, (2, 0, 2));

    // The funnel counts each refused run once, as sold out.
    assert_eq!(
        count(
            &app.db.url,
            &format!(
                "SELECT outcome FROM analytics_checkouts WHERE event_id = '{}'
                  GROUP BY outcome HAVING (outcome, sum(runs)) IN (('sold_out', 3), ('in_progress', 1))",
                event.event_id
            )
        )
        .await,
        2
    );
}

#[tokio::test]
async fn a_seat_given_back_is_held_by_the_next_start() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(2500, 2)], 15).await;
    let ticket_type = event.ticket_types[0];
    let first = app.create_user(&[Role::Participant]).await;
    let (run_id, _intent) = waiting_checkout(&app, &first, order(&event, 0, 2), "given-back").await;
    let late = app.create_user(&[Role::Participant]).await;
    let body: Value = start(&app.base_url, &app.client, &late, order(&event, 0, 2), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"]["code"], "sold_out", "{body}");

    // The first buyer gives both seats back; the next start reads the type's
    // counters as they are now, and holds exactly what is left.
    assert_eq!(cancel(&app, &first, &run_id).await.status(), 202);
    wait_for(&app, &first, &run_id, Duration::from_secs(20), is_finished).await;
    assert_eq!(counters(&app.db.url, ticket_type).await, (2, 0, 0));
    let next = app.create_user(&[Role::Participant]).await;
    let body: Value = start(&app.base_url, &app.client, &next, order(&event, 0, 2), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(body["expires_at"].is_string(), "{body}");
    assert_eq!(counters(&app.db.url, ticket_type).await, (2, 0, 2));
}
