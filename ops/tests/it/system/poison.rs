//! Fault 7, the poison job: a step that always fails lands in the dead letters
//! after its retries, the run shows `failed`; once the cause is fixed,
//! `boxoffice dlq retry` resumes the run and it completes.
//!
//! The poison: the run's state JSON is corrupted with SQL before any worker
//! sees it (the API left the run's first step to the workers), so every
//! `advance_run` attempt fails to decode it (a bug or a bad migration would
//! look the same). Fixing the cause is restoring the state.

use std::time::{Duration, Instant};

use boxoffice_models::users::Role;
use diesel_async::SimpleAsyncConnection;
use serde_json::Value;

use crate::checkout_support::{event_on_sale, is_finished, order, start, wait_for};
use crate::harness::TestApp;
use crate::harness::processes::BOXOFFICE;

/// Runs `boxoffice <args>` against the test app's Postgres and Redis.
pub async fn boxoffice(app: &TestApp, args: &[&str]) -> String {
    let out = tokio::process::Command::new(BOXOFFICE)
        .args(args)
        .env("DATABASE_URL", &app.db.url)
        .env("REDIS_URL", crate::harness::redis_url())
        .env("BOXOFFICE_REDIS_PREFIX", &app.redis_prefix)
        .env("BOXOFFICE_ENV", "development")
        .output()
        .await
        .expect("running boxoffice");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "boxoffice {args:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The run's status straight from Postgres.
pub async fn run_status(app: &TestApp, run_id: &str) -> String {
    let mut conn = app.raw_conn().await;
    let run = boxoffice_models::workflow_runs::find(&mut conn, run_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    run.status
}

pub async fn wait_status(app: &TestApp, run_id: &str, status: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let now = run_status(app, run_id).await;
        if now == status {
            return;
        }
        assert!(
            started.elapsed() < within,
            "run {run_id} is {now}, not {status}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_poison_job_is_dead_lettered_and_dlq_retry_completes_the_run() {
    // The API leaves the first step to the workers (as when its process died
    // right after the commit): the workers are the first to read the state.
    let app = TestApp::builder()
        .leaving_first_steps_to_workers()
        .spawn()
        .await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 15).await;

    // Started while no worker runs: the run waits at its first step.
    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 2),
        Some("poison-1"),
    )
    .await;
    assert_eq!(r.status(), 202);
    let run_id = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut conn = app.raw_conn().await;
    conn.batch_execute(&format!(
        "CREATE TABLE saved_state AS SELECT state FROM workflow_runs WHERE id = '{run_id}';
         UPDATE workflow_runs SET state = '\"corrupt\"'::jsonb WHERE id = '{run_id}';"
    ))
    .await
    .unwrap();

    app.start_workers("http://127.0.0.1:1");
    // Five attempts, apalis waiting 1 + 2 + 3 + 4 s between them.
    wait_status(&app, &run_id, "failed", Duration::from_secs(40)).await;
    // The last attempt parks the run, then apalis moves its job to the dead
    // letters: wait for that move before reading the list.
    dead_job_of(&app, &run_id, Duration::from_secs(10)).await;

    let listed: Vec<Value> =
        serde_json::from_str(&boxoffice(&app, &["dlq", "list", "--json"]).await).unwrap();
    let dead: Vec<&Value> = listed
        .iter()
        .filter(|j| j["run_id"] == run_id.as_str())
        .collect();
    assert_eq!(dead.len(), 1, "one dead job for the run: {listed:?}");
    let job = dead[0];
    assert_eq!(job["queue"], "advance_run");
    assert_eq!(job["step"], "start");
    assert_eq!(job["attempts"], 5, "{job}");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .contains("decoding the run's state"),
        "{job}"
    );
    assert!(job["age_secs"].as_i64().is_some(), "{job}");
    // The table too names the run and its queue.
    let table = boxoffice(&app, &["dlq", "list", "--queue", "advance_run"]).await;
    assert!(
        table.contains(&run_id) && table.contains("advance_run"),
        "{table}"
    );

    // The run shows why it failed, in its record and its history.
    let shown: Value =
        serde_json::from_str(&boxoffice(&app, &["runs", "show", &run_id]).await).unwrap();
    assert_eq!(shown["status"], "failed");
    assert_eq!(shown["last_error"]["parked"], true, "{shown}");
    assert_eq!(shown["last_error"]["resume_status"], "running", "{shown}");
    assert!(
        shown["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["outcome"] == "failed"),
        "{shown}"
    );

    // Fix the cause, then retry the dead job: the run resumes and completes.
    conn.batch_execute(&format!(
        "UPDATE workflow_runs SET state = (SELECT state FROM saved_state) WHERE id = '{run_id}';"
    ))
    .await
    .unwrap();
    let id = job["id"].as_str().unwrap();
    let outcome: Value =
        serde_json::from_str(&boxoffice(&app, &["dlq", "retry", id]).await).unwrap();
    assert_eq!(outcome["run_status"], "running", "{outcome}");
    let view = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), is_finished).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["ticket_ids"].as_array().unwrap().len(), 2);

    let after: Vec<Value> =
        serde_json::from_str(&boxoffice(&app, &["dlq", "list", "--json"]).await).unwrap();
    assert!(
        after.iter().all(|j| j["run_id"] != run_id.as_str()),
        "the retried job left the dead letters: {after:?}"
    );
    let audited = crate::checkout_support::count(
        &app.db.url,
        &format!("SELECT 1 FROM audit_log WHERE action = 'dlq.retry' AND target_id = '{id}' AND details->>'via' = 'cli'"),
    )
    .await;
    assert_eq!(audited, 1);
}

/// Makes every later advance of the run fail, as a bug or a bad migration
/// would: its state is replaced by one that does not decode. The real state is
/// kept aside for [`cure`].
pub async fn poison(app: &TestApp, run_id: &str) {
    let mut conn = app.raw_conn().await;
    conn.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS poisoned_states (run_id uuid PRIMARY KEY, state jsonb NOT NULL);
         INSERT INTO poisoned_states SELECT id, state FROM workflow_runs WHERE id = '{run_id}';
         UPDATE workflow_runs SET state = '\"corrupt\"'::jsonb WHERE id = '{run_id}';"
    ))
    .await
    .unwrap();
}

/// Fixes the cause: gives a [`poison`]ed run its real state back.
pub async fn cure(app: &TestApp, run_id: &str) {
    let mut conn = app.raw_conn().await;
    conn.batch_execute(&format!(
        "UPDATE workflow_runs r SET state = p.state FROM poisoned_states p
          WHERE r.id = p.run_id AND r.id = '{run_id}';"
    ))
    .await
    .unwrap();
}

/// Queues a "look at run R" through the outbox, as a timer or a signal does:
/// the advance job the workers then run is the one that fails on a poisoned run.
pub async fn poke(app: &TestApp, run_id: &str) {
    let conn = app.raw_conn().await;
    boxoffice_models::outbox::push(
        &conn,
        "advance_run",
        &serde_json::json!({ "run_id": run_id }),
        None,
    )
    .await
    .unwrap();
}

/// The ids in `{queue}:dead`, read straight from Redis.
pub async fn dead_ids(app: &TestApp, queue: &str) -> Vec<String> {
    let config = boxoffice_workers::queue::config(&app.redis_prefix, queue);
    let mut redis = app.conns.redis_patient.clone();
    redis::cmd("SMEMBERS")
        .arg(config.dead_jobs_set())
        .query_async(&mut redis)
        .await
        .unwrap()
}

/// Waits until the run's job is in `{queue}:dead` (it lands there right after
/// the run is parked) and returns its entry in `boxoffice dlq list --json`.
pub async fn dead_job_of(app: &TestApp, run_id: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let listed: Vec<Value> =
            serde_json::from_str(&boxoffice(app, &["dlq", "list", "--json"]).await).unwrap();
        if let Some(job) = listed.into_iter().find(|j| j["run_id"] == run_id) {
            return job;
        }
        assert!(
            started.elapsed() < within,
            "no dead job for run {run_id} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
