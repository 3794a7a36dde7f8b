//! The shortcuts of the checkout's hot path, and why they lose nothing: the
//! hold taken ahead of the run's transaction (`engine::ahead`) and not looked
//! for by a poke past the run's start (`advance_past_start`), the remote
//! command carried out by the job that issued it (`Dispatch::Inline`), and a
//! step's writes sent together (`engine::step_writes`).

use std::sync::Arc;
use std::time::Duration;

use boxoffice_models::holds::{self, Line};
use boxoffice_models::users::Role;
use boxoffice_workers::adapters::payments::{StripeClient, StripeConfig};
use boxoffice_workers::engine::{
    Advanced, Dispatch, EngineInput, RemoteCalls, Trigger, advance, advance_past_start,
};
use chrono::Utc;
use diesel_async::SimpleAsyncConnection;
use serde_json::Value;
use uuid::Uuid;

use super::fixtures::{SaleEvent, count, counters, event_on_sale, order, start, wait_for};
use crate::harness::users::TestUser;
use crate::harness::{TEST_STRIPE_KEY, TestApp};

/// A run started over HTTP by an API that left its first step to the workers
/// (see `leaving_first_steps_to_workers`), which no worker has touched yet.
async fn new_run(app: &TestApp, quantity: i32) -> (TestUser, SaleEvent, Uuid) {
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(2000, 10)], 15).await;
    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, quantity),
        None,
    )
    .await;
    assert_eq!(r.status(), 202);
    let run_id = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (buyer, event, run_id)
}

async fn inconsistencies(app: &TestApp) -> usize {
    let mut conn = app.raw_conn().await;
    holds::inconsistencies(&mut conn).await.unwrap().len()
}

/// How many of the concurrent advances `steps` moved their run; each must
/// succeed.
async fn how_many_moved(steps: Vec<tokio::task::JoinHandle<anyhow::Result<Advanced>>>) -> usize {
    let mut moved = 0;
    for step in steps {
        let advanced = step.await.unwrap().expect("every advance succeeds");
        moved += usize::from(advanced.changed);
    }
    moved
}

/// The run's three seats of the event's ten are held, by one hold row, and
/// the ledger agrees.
async fn assert_held_once(app: &TestApp, event: &SaleEvent, run_id: Uuid) {
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 0, 3)
    );
    assert_eq!(
        count(
            &app.db.url,
            &format!("SELECT 1 FROM holds WHERE run_id = '{run_id}'")
        )
        .await,
        1
    );
    assert_eq!(inconsistencies(app).await, 0);
}

#[tokio::test]
async fn concurrent_steps_of_a_new_run_hold_its_seats_once() {
    let app = TestApp::builder()
        .leaving_first_steps_to_workers()
        .spawn()
        .await;
    let (_buyer, event, run_id) = new_run(&app, 3).await;
    let signer = Arc::new(app.ticket_signer());

    // Eight copies of the run's first message, all at once: each one takes the
    // hold ahead of its transaction, or finds the one another copy took.
    let steps: Vec<_> = (0..8)
        .map(|_| {
            let (pool, signer) = (app.pool().clone(), signer.clone());
            tokio::spawn(async move {
                advance(&pool, &signer, run_id, Trigger::Poke, Dispatch::Queue).await
            })
        })
        .collect();
    let moved = how_many_moved(steps).await;

    assert_eq!(
        moved, 1,
        "one copy moved the run, the others found it moved"
    );
    assert_held_once(&app, &event, run_id).await;
}

/// A poke marked past its run's start (a signal's delivery, a timer) reads
/// nothing ahead; should the run not have started after all, its
/// transaction takes the hold itself, once, alongside a start's poke.
#[tokio::test]
async fn a_run_poked_as_past_its_start_before_it_started_holds_its_seats_once() {
    let app = TestApp::builder()
        .leaving_first_steps_to_workers()
        .spawn()
        .await;
    let (_buyer, event, run_id) = new_run(&app, 3).await;
    let signer = Arc::new(app.ticket_signer());

    let steps: Vec<_> = (0..6)
        .map(|i| {
            let (pool, signer) = (app.pool().clone(), signer.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    advance_past_start(&pool, &signer, run_id, Dispatch::Queue).await
                } else {
                    advance(&pool, &signer, run_id, Trigger::Poke, Dispatch::Queue).await
                }
            })
        })
        .collect();
    let moved = how_many_moved(steps).await;

    assert_eq!(
        moved, 1,
        "one poke moved the run, the others found it moved"
    );
    assert_held_once(&app, &event, run_id).await;
}

#[tokio::test]
async fn a_hold_taken_before_a_step_crashed_is_adopted_by_the_next_attempt() {
    let app = TestApp::builder()
        .leaving_first_steps_to_workers()
        .spawn()
        .await;
    let (_buyer, event, run_id) = new_run(&app, 2).await;
    let ticket_type = event.ticket_types[0];

    // The step took its hold and died before its transaction committed.
    let mut conn = app.raw_conn().await;
    let line = Line {
        ticket_type_id: ticket_type,
        quantity: 2,
    };
    let expires_at = Utc::now() + chrono::Duration::minutes(15);
    holds::hold(&mut conn, run_id, &[line], expires_at)
        .await
        .unwrap();
    assert_eq!(counters(&app.db.url, ticket_type).await, (10, 0, 2));

    // The redelivered step holds nothing more: the run adopts that hold.
    let signer = app.ticket_signer();
    let advanced = advance(app.pool(), &signer, run_id, Trigger::Poke, Dispatch::Queue)
        .await
        .unwrap();
    assert!(advanced.changed);
    assert_eq!(counters(&app.db.url, ticket_type).await, (10, 0, 2));
    let state: Value = diesel_async::RunQueryDsl::get_result(
        diesel::QueryDsl::select(
            diesel::QueryDsl::find(boxoffice_models::schema::workflow_runs::table, run_id),
            boxoffice_models::schema::workflow_runs::state,
        ),
        &mut conn,
    )
    .await
    .unwrap();
    assert_eq!(state["lines"][0]["quantity"], 2, "{state}");
    assert_eq!(state["lines"][0]["unit_price_minor"], 2000, "{state}");
    assert_eq!(inconsistencies(&app).await, 0);
}

/// The step's row, as Postgres has it.
async fn step_and_version(
    conn: &mut diesel_async::AsyncPgConnection,
    run_id: Uuid,
) -> (String, i32) {
    use boxoffice_models::schema::workflow_runs::dsl as runs;
    use diesel::QueryDsl;
    diesel_async::RunQueryDsl::get_result(
        runs::workflow_runs
            .find(run_id)
            .select((runs::step, runs::version)),
        conn,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_step_whose_last_write_fails_keeps_none_of_its_writes() {
    let app = TestApp::builder()
        .leaving_first_steps_to_workers()
        .spawn()
        .await;
    let (_buyer, event, run_id) = new_run(&app, 2).await;
    let mut conn = app.raw_conn().await;
    // The database refuses the step's payment-intent message: the last of
    // the writes the step sends together (history, transition, message).
    conn.batch_execute(&format!(
        "CREATE FUNCTION refuse_intent_message() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.queue = 'run_effect' AND NEW.payload->>'run_id' = '{run_id}' THEN
             RAISE EXCEPTION 'refused for the test';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_intent_message BEFORE INSERT ON outbox
           FOR EACH ROW EXECUTE FUNCTION refuse_intent_message();"
    ))
    .await
    .unwrap();
    let signer = app.ticket_signer();
    let failed = advance(app.pool(), &signer, run_id, Trigger::Poke, Dispatch::Queue).await;
    assert!(failed.is_err(), "{failed:?}");

    // None of the step is kept: the run where it was, no history, no message.
    assert_eq!(
        step_and_version(&mut conn, run_id).await,
        ("start".to_owned(), 1)
    );
    let history = format!("SELECT 1 FROM workflow_steps WHERE run_id = '{run_id}'");
    let intents = format!(
        "SELECT 1 FROM outbox WHERE queue = 'run_effect' AND payload->>'run_id' = '{run_id}'"
    );
    assert_eq!(count(&app.db.url, &history).await, 0);
    assert_eq!(count(&app.db.url, &intents).await, 0);

    // Let through, the next attempt takes the step once, with the hold the
    // first one took ahead of its transaction.
    conn.batch_execute(
        "DROP TRIGGER refuse_intent_message ON outbox; DROP FUNCTION refuse_intent_message();",
    )
    .await
    .unwrap();
    let advanced = advance(app.pool(), &signer, run_id, Trigger::Poke, Dispatch::Queue)
        .await
        .unwrap();
    assert!(advanced.changed);
    assert_eq!(
        step_and_version(&mut conn, run_id).await,
        ("creating_payment_intent".to_owned(), 2)
    );
    assert!(count(&app.db.url, &history).await > 0);
    assert_eq!(count(&app.db.url, &intents).await, 1);
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 0, 2)
    );
    assert_eq!(inconsistencies(&app).await, 0);
}

#[tokio::test]
async fn a_hold_taken_for_a_run_that_ended_meanwhile_is_given_back_by_the_sweep() {
    let app = TestApp::builder()
        .leaving_first_steps_to_workers()
        .spawn()
        .await;
    let (_buyer, event, run_id) = new_run(&app, 2).await;
    let ticket_type = event.ticket_types[0];
    let signer = app.ticket_signer();

    // An operator cancels the run before its first step; a step that read the
    // run just before still takes its hold.
    let cancelled = advance(
        app.pool(),
        &signer,
        run_id,
        Trigger::Operator(EngineInput::Cancel),
        Dispatch::Queue,
    )
    .await
    .unwrap();
    assert_eq!(cancelled.status.as_deref(), Some("cancelled"));
    let mut conn = app.raw_conn().await;
    let line = Line {
        ticket_type_id: ticket_type,
        quantity: 2,
    };
    holds::hold(
        &mut conn,
        run_id,
        &[line],
        Utc::now() + chrono::Duration::minutes(15),
    )
    .await
    .unwrap();
    assert_eq!(counters(&app.db.url, ticket_type).await, (10, 0, 2));
    // The step itself finds the run ended and does nothing.
    let late = advance(app.pool(), &signer, run_id, Trigger::Poke, Dispatch::Queue)
        .await
        .unwrap();
    assert!(!late.changed);

    // The sweep (every second in tests) gives the seats back.
    app.start_workers("http://127.0.0.1:9");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while counters(&app.db.url, ticket_type).await != (10, 0, 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the orphaned hold was not released: {:?}",
            counters(&app.db.url, ticket_type).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(
            &app.db.url,
            &format!("SELECT 1 FROM holds WHERE run_id = '{run_id}' AND status = 'released'")
        )
        .await,
        1
    );
    assert_eq!(inconsistencies(&app).await, 0);
}

/// The job that issues the payment intent creates it at once; its delayed
/// backstop message is deleted unused. If the job dies first, the backstop
/// creates it: once either way.
#[tokio::test]
async fn an_inline_remote_command_runs_once_with_or_without_its_backstop() {
    let app = TestApp::builder()
        .leaving_first_steps_to_workers()
        .spawn()
        .await;
    let sandbox = app.sandbox().await;
    let signer = Arc::new(app.ticket_signer());
    let calls = RemoteCalls {
        db: app.pool().clone(),
        ticket_signer: signer.clone(),
        payments: Arc::new(
            StripeClient::new(StripeConfig::new(&sandbox.base_url, TEST_STRIPE_KEY)).unwrap(),
        ),
        relay_nudge: Arc::new(tokio::sync::Notify::new()),
    };
    let backstops = |run_id: Uuid| {
        format!(
            "SELECT 1 FROM outbox WHERE queue = 'run_effect' AND payload->>'run_id' = '{run_id}' \
             AND available_at > now() + interval '10 seconds'"
        )
    };

    // 1. The job lives: intent created inline, backstop gone.
    let (buyer, _event, run_id) = new_run(&app, 1).await;
    let advanced = advance(app.pool(), &signer, run_id, Trigger::Poke, Dispatch::Inline)
        .await
        .unwrap();
    assert!(advanced.issued.is_some(), "{advanced:?}");
    assert_eq!(count(&app.db.url, &backstops(run_id)).await, 1);
    calls.follow(advanced.issued).await.unwrap();
    assert_eq!(
        count(
            &app.db.url,
            &format!(
                "SELECT 1 FROM outbox WHERE queue = 'run_effect' AND payload->>'run_id' = '{run_id}'"
            )
        )
        .await,
        0,
        "the backstop is deleted once the command is done"
    );
    let view = wait_for(
        &app,
        &buyer,
        &run_id.to_string(),
        Duration::from_secs(5),
        |v| v["status"] == "waiting",
    )
    .await;
    assert!(view["payment"]["client_secret"].is_string(), "{view}");
    assert_eq!(sandbox.stats().await["intents_created"], 1);

    // 2. The job dies after its commit: the backstop (made due now rather than
    // in 20 s) goes through the workers and creates the intent, once.
    let (buyer, _event, run_id) = new_run(&app, 1).await;
    let advanced = advance(app.pool(), &signer, run_id, Trigger::Poke, Dispatch::Inline)
        .await
        .unwrap();
    assert!(advanced.issued.is_some());
    drop(advanced);
    let mut conn = app.raw_conn().await;
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut conn,
        &format!(
            "UPDATE outbox SET available_at = now() \
             WHERE queue = 'run_effect' AND payload->>'run_id' = '{run_id}'"
        ),
    )
    .await
    .unwrap();
    app.start_workers(&sandbox.base_url);
    let view = wait_for(
        &app,
        &buyer,
        &run_id.to_string(),
        Duration::from_secs(20),
        |v| v["status"] == "waiting",
    )
    .await;
    assert!(view["payment"]["client_secret"].is_string(), "{view}");
    assert_eq!(sandbox.stats().await["intents_created"], 2);
}
