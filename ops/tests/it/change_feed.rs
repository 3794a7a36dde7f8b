//! The API keeps sessions and run status views in memory and drops them when
//! Postgres announces a change (`api/src/change_feed`): reads are served from
//! memory, a change committed anywhere is seen within moments, a lost
//! listener sends every read to Postgres, racing readers never see a run
//! go back, and long polls learn of an announced change without a read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use boxoffice_models::workflow_runs::{self, NewRun};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::checkout::fixtures::{counting_statements, statement_calls};
use crate::harness::users::TestUser;
use crate::harness::{TestApp, TestAppBuilder};

/// The most a change may take to be heard in these tests (it takes about a
/// millisecond; the margin is for a loaded CI machine).
pub(crate) const HEARD_WITHIN: Duration = Duration::from_secs(2);

pub(crate) async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: not within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    started.elapsed()
}

pub(crate) async fn feed_live(app: &TestApp) {
    let views = app.state.change_feed.views();
    until("the change feed listens", async || {
        views.runs.is_live() && views.sessions.is_live() && views.sale_terms.is_live()
    })
    .await;
}

/// A run of `owner`'s that nothing advances (no workers run here).
async fn insert_run(app: &TestApp, owner: Uuid) -> Uuid {
    let mut conn = app.pool().get().await.unwrap();
    let id = Uuid::now_v7();
    workflow_runs::start(
        &mut conn,
        &NewRun {
            id,
            kind: "checkout".into(),
            status: "running".into(),
            step: "hold".into(),
            state: serde_json::json!({}),
            correlation_id: None,
            owner_id: Some(owner),
            idempotency_key: None,
            request_hash: None,
            view: serde_json::json!({ "mark": 1 }),
            parent_id: None,
            child_key: None,
        },
    )
    .await
    .unwrap();
    id
}

/// An app whose change feed listens, a user, and a run of theirs.
async fn listening_app_with_a_run(app: TestAppBuilder) -> (TestApp, TestUser, Uuid) {
    let app = app.spawn().await;
    feed_live(&app).await;
    let user = app.create_user(&[]).await;
    let id = insert_run(&app, user.id).await;
    (app, user, id)
}

/// A transition committed by another process, as a worker commits one; with
/// `announced` false, the triggers are off for it (as if its notification
/// were lost).
async fn bump(conn: &mut AsyncPgConnection, id: Uuid, announced: bool) {
    let role = if announced { "origin" } else { "replica" };
    conn.batch_execute(&format!(
        "SET session_replication_role = {role};
         UPDATE workflow_runs SET version = version + 1,
                view = jsonb_build_object('mark', version + 1), updated_at = now()
          WHERE id = '{id}';
         SET session_replication_role = origin;"
    ))
    .await
    .unwrap();
}

async fn status(app: &TestApp, user: &TestUser, id: Uuid) -> Value {
    let response = app
        .client
        .get(app.url(&format!("/v1/workflows/{id}")))
        .header("authorization", user.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn me_status(app: &TestApp, user: &TestUser) -> StatusCode {
    app.client
        .get(app.url("/v1/me"))
        .header("authorization", user.bearer())
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_status_is_served_from_memory_until_its_run_changes() {
    let (app, user, id) = listening_app_with_a_run(TestApp::builder()).await;
    let mut conn = app.raw_conn().await;

    assert_eq!(status(&app, &user, id).await["version"], 1);
    let kept = app.state.change_feed.views().runs.get(&id).expect("kept");
    assert_eq!(kept.version, 1);

    // A change Postgres does not announce is not seen: the read came from memory.
    bump(&mut conn, id, false).await;
    let read = status(&app, &user, id).await;
    assert_eq!(
        (read["version"].as_i64(), read["mark"].as_i64()),
        (Some(1), Some(1))
    );

    // An announced change is seen at once, and the new view is kept in its turn.
    bump(&mut conn, id, true).await;
    let took = until("the announced change is seen", async || {
        status(&app, &user, id).await["version"] == 3
    })
    .await;
    println!("a run's change was seen by the API after {took:?}");
    assert!(took < HEARD_WITHIN, "took {took:?}");
    assert_eq!(status(&app, &user, id).await["mark"], 3);
    assert_eq!(
        app.state
            .change_feed
            .views()
            .runs
            .get(&id)
            .map(|v| v.version),
        Some(3)
    );

    // Someone else's run stays hidden, kept or not.
    let stranger = app.create_user(&[]).await;
    let response = app
        .client
        .get(app.url(&format!("/v1/workflows/{id}")))
        .header("authorization", stranger.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_logout_or_a_disabled_user_on_one_replica_ends_the_session_on_the_other() {
    let first = TestApp::spawn().await;
    let second = TestApp::builder().replica_of(&first).spawn().await;
    feed_live(&first).await;
    feed_live(&second).await;

    let leaving = first.create_user(&[]).await;
    assert_eq!(me_status(&second, &leaving).await, StatusCode::OK);
    assert!(
        second
            .state
            .change_feed
            .views()
            .sessions
            .get(&session_id(&leaving))
            .is_some(),
        "the session is kept by the second replica"
    );
    let logout = first
        .client
        .post(first.url("/v1/auth/logout"))
        .header("authorization", leaving.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    // The replica that signed out knows at once.
    assert_eq!(me_status(&first, &leaving).await, StatusCode::UNAUTHORIZED);
    let took = until("the other replica hears of the logout", async || {
        me_status(&second, &leaving).await == StatusCode::UNAUTHORIZED
    })
    .await;
    println!("a logout was heard by the other replica after {took:?}");
    assert!(took < HEARD_WITHIN, "took {took:?}");

    // A user disabled outside the API (by SQL here) loses every kept session.
    let disabled = first.create_user(&[]).await;
    let bystander = first.create_user(&[]).await;
    assert_eq!(me_status(&second, &disabled).await, StatusCode::OK);
    assert_eq!(me_status(&second, &bystander).await, StatusCode::OK);
    let mut conn = first.raw_conn().await;
    conn.batch_execute(&format!(
        "UPDATE users SET disabled_at = now() WHERE id = '{}'",
        disabled.id
    ))
    .await
    .unwrap();
    let took = until("the replica hears of the disabled user", async || {
        me_status(&second, &disabled).await == StatusCode::UNAUTHORIZED
    })
    .await;
    println!("a disabled user was heard by the replica after {took:?}");
    assert!(took < HEARD_WITHIN, "took {took:?}");
    assert_eq!(me_status(&second, &bystander).await, StatusCode::OK);
}

/// The session id inside a test user's access token.
fn session_id(user: &TestUser) -> Uuid {
    use base64::Engine;
    let payload = user.access_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn without_its_listener_the_api_reads_postgres_until_it_listens_again() {
    let (app, user, id) = listening_app_with_a_run(TestApp::builder()).await;
    let mut conn = app.raw_conn().await;
    assert_eq!(status(&app, &user, id).await["version"], 1);

    let ended: Vec<bool> = diesel::sql_query(
        "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
          WHERE datname = current_database() AND query LIKE 'LISTEN boxoffice_sessions%'",
    )
    .load::<Ended>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|row| row.ended)
    .collect();
    assert_eq!(ended, [true], "one listening connection was ended");
    let views = app.state.change_feed.views();
    until("the API notices its listener is gone", async || {
        !views.runs.is_live()
    })
    .await;

    // Whatever happens meanwhile, announced or not, is read from Postgres.
    bump(&mut conn, id, false).await;
    assert_eq!(status(&app, &user, id).await["version"], 2);

    // It listens again on a new connection and starts from nothing.
    feed_live(&app).await;
    assert_eq!(status(&app, &user, id).await["version"], 2);
    assert_eq!(views.runs.get(&id).map(|v| v.version), Some(2));
}

#[derive(diesel::QueryableByName)]
struct Ended {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ended: bool,
}

#[tokio::test]
async fn readers_racing_a_writer_never_see_a_run_go_back_and_end_on_its_last_change() {
    const READERS: usize = 8;
    const CHANGES: i64 = 200;
    let app = Arc::new(TestApp::spawn().await);
    feed_live(&app).await;
    let user = Arc::new(app.create_user(&[]).await);
    let id = insert_run(&app, user.id).await;
    let writing = Arc::new(AtomicBool::new(true));

    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (app, user, writing) = (app.clone(), user.clone(), writing.clone());
            tokio::spawn(async move {
                let mut seen = 0_i64;
                let mut reads = 0_u64;
                loop {
                    // (`RunQueryDsl` also has a `load`.)
                    let done = !AtomicBool::load(&writing, Ordering::SeqCst);
                    let mut request = app
                        .client
                        .get(app.url(&format!("/v1/workflows/{id}")))
                        .header("authorization", user.bearer());
                    if seen > 0 {
                        request =
                            request.header("if-none-match", format!("\"{}-{seen}\"", id.simple()));
                    }
                    let response = request.send().await.unwrap();
                    reads += 1;
                    match response.status() {
                        StatusCode::NOT_MODIFIED => {}
                        StatusCode::OK => {
                            let body: Value = response.json().await.unwrap();
                            let version = body["version"].as_i64().unwrap();
                            assert!(version >= seen, "went back from {seen} to {version}");
                            assert_eq!(body["mark"].as_i64(), Some(version), "a torn view");
                            seen = version;
                        }
                        other => panic!("status read answered {other}"),
                    }
                    if done {
                        return (seen, reads);
                    }
                }
            })
        })
        .collect();

    let mut conn = app.raw_conn().await;
    for _ in 1..CHANGES {
        bump(&mut conn, id, true).await;
    }
    // The last change has been committed; within moments every reader sees it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let settle = Instant::now();
    until("a fresh read shows the last change", async || {
        status(&app, &user, id).await["version"] == CHANGES
    })
    .await;
    println!(
        "the last change was seen {:?} after its commit + 50 ms",
        settle.elapsed()
    );
    writing.store(false, Ordering::SeqCst);
    let mut total = 0;
    for reader in readers {
        let (seen, reads) = reader.await.unwrap();
        assert_eq!(seen, CHANGES, "a reader ended on an old version");
        total += reads;
    }
    println!("{READERS} readers made {total} reads while {CHANGES} changes were committed");
    assert!(total > READERS as u64 * 5, "the readers raced the writer");
}

/// A long poll of `id` from version `known`, answered with the version it shows.
async fn long_poll(app: &TestApp, user: &TestUser, id: Uuid, known: i64) -> (Duration, i64) {
    let started = Instant::now();
    let response = app
        .client
        .get(app.url(&format!("/v1/workflows/{id}?wait=10")))
        .header("authorization", user.bearer())
        .header("if-none-match", format!("\"{}-{known}\"", id.simple()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the long poll timed out");
    let body: Value = response.json().await.unwrap();
    (started.elapsed(), body["version"].as_i64().unwrap())
}

/// Starts a long poll from version `known`, then changes the run (announced
/// or not) once the poll waits; the time from the change to the answer, and
/// the version it showed.
async fn poll_across_a_change(
    app: &Arc<TestApp>,
    user: &Arc<TestUser>,
    conn: &mut AsyncPgConnection,
    id: Uuid,
    known: i64,
    announced: bool,
) -> (Duration, i64) {
    let polling = {
        let (app, user) = (app.clone(), user.clone());
        tokio::spawn(async move { long_poll(&app, &user, id, known).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let changed = Instant::now();
    bump(conn, id, announced).await;
    let (_, version) = polling.await.unwrap();
    (changed.elapsed(), version)
}

#[tokio::test]
async fn a_long_poll_answers_when_postgres_announces_the_change_or_at_the_next_full_look() {
    let (app, user, id) = listening_app_with_a_run(TestApp::builder()).await;
    let (app, user) = (Arc::new(app), Arc::new(user));
    let mut conn = app.raw_conn().await;
    assert_eq!(status(&app, &user, id).await["version"], 1);

    // Announced: the watcher reads the run when the notification comes.
    let (took, version) = poll_across_a_change(&app, &user, &mut conn, id, 1, true).await;
    assert_eq!(version, 2);
    println!("a long poll answered {took:?} after an announced change");
    assert!(took < HEARD_WITHIN, "took {took:?}");

    // Unannounced (a lost notification): the full look every second finds it.
    let (took, version) = poll_across_a_change(&app, &user, &mut conn, id, 2, false).await;
    assert_eq!(version, 3);
    println!("a long poll answered {took:?} after an unannounced change");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// The version reads of the long polls' watcher.
const VERSION_READS: &str = r#"SELECT "workflow_runs"."id", "workflow_runs"."version" FROM%"#;

/// A change's notification says which version the run moved to, and a poll
/// that starts waiting on a view kept in memory reads nothing: long polls
/// across announced changes cost no version reads but the watcher's backstop
/// (at most one a second). Each poll used to cost two: one as it started
/// waiting, one when the change was heard.
#[tokio::test]
async fn long_polls_across_announced_changes_read_no_versions_but_the_backstops() {
    const POLLS: i64 = 20;
    let (app, user, id) = listening_app_with_a_run(TestApp::builder().counting_statements()).await;
    let (app, user) = (Arc::new(app), Arc::new(user));
    let mut conn = app.raw_conn().await;
    let mut stats = counting_statements(&app).await;
    assert_eq!(status(&app, &user, id).await["version"], 1);

    let reads_before = statement_calls(&mut stats, VERSION_READS).await;
    let started = Instant::now();
    for known in 1..=POLLS {
        let polling = {
            let (app, user) = (app.clone(), user.clone());
            tokio::spawn(async move { long_poll(&app, &user, id, known).await })
        };
        // Long enough for the poll to be waiting on most turns; a change
        // that comes first is answered at once, from the same view.
        tokio::time::sleep(Duration::from_millis(40)).await;
        bump(&mut conn, id, true).await;
        let (took, version) = polling.await.unwrap();
        assert_eq!(version, known + 1);
        assert!(took < HEARD_WITHIN, "took {took:?}");
    }
    let elapsed = started.elapsed();
    let reads = statement_calls(&mut stats, VERSION_READS).await - reads_before;
    println!("{POLLS} long polls across announced changes in {elapsed:?}: {reads} version reads");
    // The backstop reads every watched run once a second while anyone waits;
    // a change heard in the instant between a poll's look at its view and
    // its wait costs that poll a read (a loaded machine may see a few).
    let backstops = i64::try_from(elapsed.as_secs()).unwrap() + 1;
    let races = 3;
    assert!(
        reads <= backstops + races,
        "{reads} version reads in {elapsed:?}, more than the backstop's {backstops} and {races} races"
    );
}
