//! `boxoffice dlq discard` and `dlq retry --all`, and the same under
//! `/v1/ops/dlq`, on runs poisoned for real:
//! each run's state is corrupted, its advance job fails until the run is parked
//! and the job is dead-lettered, then the operator decides. The effects are
//! checked where they live: the run and its holds in Postgres, `{queue}:dead`
//! in Redis, the audit log.

use std::time::Duration;

use boxoffice_models::users::Role;
use serde_json::Value;

use crate::checkout_support::{count, counters, event_on_sale, order, start, wait_for};
use crate::harness::TestApp;
use crate::ops_tools::waiting_paid_run;
use crate::system::poison::{
    boxoffice, cure, dead_ids, dead_job_of, poison, poke, run_status, wait_status,
};

/// Five attempts, apalis waiting 1 + 2 + 3 + 4 s between them, and slack for a
/// machine busy with other tests.
const PARKED_WITHIN: Duration = Duration::from_secs(45);

async fn active_holds(app: &TestApp, run_id: &str) -> i64 {
    count(
        &app.db.url,
        &format!("SELECT 1 FROM holds WHERE run_id = '{run_id}' AND status = 'active'"),
    )
    .await
}

/// A paid run holding 2 of 10 seats, parked by a poison job: returns the
/// buyer's run id, its event's ticket type and the dead job's id.
async fn parked_waiting_run(app: &TestApp, key: &str) -> (String, uuid::Uuid, String) {
    let (_buyer, run_id, event) = waiting_paid_run(app, key).await;
    let ticket_type = event.ticket_types[0];
    assert_eq!(counters(&app.db.url, ticket_type).await, (10, 0, 2));
    poison(app, &run_id).await;
    poke(app, &run_id).await;
    wait_status(app, &run_id, "failed", PARKED_WITHIN).await;
    let job = dead_job_of(app, &run_id, Duration::from_secs(10)).await;
    assert_eq!(job["queue"], "advance_run", "{job}");
    assert_eq!(job["step"], "awaiting_payment", "{job}");
    // Parked is not finished: the seats are still held for the run.
    assert_eq!(counters(&app.db.url, ticket_type).await, (10, 0, 2));
    (run_id, ticket_type, job["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn dlq_discard_with_fate_compensate_releases_the_seats_and_ends_the_run_compensated() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let (run_id, ticket_type, job_id) = parked_waiting_run(&app, "dlq-discard-compensate").await;

    // The cause is fixed, but the buyer is gone: undo the run rather than resume it.
    cure(&app, &run_id).await;
    let outcome: Value = serde_json::from_str(
        &boxoffice(&app, &["dlq", "discard", &job_id, "--fate", "compensate"]).await,
    )
    .unwrap();
    assert_eq!(outcome["action"], "dlq.discard", "{outcome}");
    assert_eq!(outcome["jobs"], serde_json::json!([job_id]), "{outcome}");

    wait_status(&app, &run_id, "compensated", Duration::from_secs(30)).await;
    assert_eq!(counters(&app.db.url, ticket_type).await, (10, 0, 0));
    assert_eq!(active_holds(&app, &run_id).await, 0);
    assert!(
        !dead_ids(&app, "advance_run").await.contains(&job_id),
        "the discarded job is still in advance_run:dead"
    );
    let audited = count(
        &app.db.url,
        &format!(
            "SELECT 1 FROM audit_log WHERE action = 'dlq.discard' AND target_id = '{job_id}'
               AND details->>'fate' = 'compensate' AND details->>'via' = 'cli'
               AND details->>'run_id' = '{run_id}'"
        ),
    )
    .await;
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn dlq_discard_with_fate_fail_leaves_the_run_failed_for_good_with_its_seats_released() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let (run_id, ticket_type, job_id) = parked_waiting_run(&app, "dlq-discard-fail").await;

    // The cause cannot be fixed (the state stays corrupt): give the run up.
    let outcome: Value = serde_json::from_str(
        &boxoffice(&app, &["dlq", "discard", &job_id, "--fate", "fail"]).await,
    )
    .unwrap();
    assert_eq!(outcome["run_status"], "failed", "{outcome}");
    // Nobody can read whether the run has a payment: the operator is told.
    assert!(
        outcome["detail"]
            .as_str()
            .unwrap()
            .contains("settle any payment of this run at the provider"),
        "{outcome}"
    );

    let shown: Value =
        serde_json::from_str(&boxoffice(&app, &["runs", "show", &run_id]).await).unwrap();
    assert_eq!(shown["status"], "failed", "{shown}");
    assert_eq!(shown["last_error"]["parked"], false, "{shown}");
    assert_eq!(shown["last_error"]["discarded"], true, "{shown}");
    assert!(
        shown["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["input"] == "operator:dlq_discard" && s["outcome"] == "failed"),
        "the history says an operator failed it: {shown}"
    );
    // Failed for good is finished: nothing of it may keep seats from others.
    assert_eq!(counters(&app.db.url, ticket_type).await, (10, 0, 0));
    assert_eq!(active_holds(&app, &run_id).await, 0);
    assert!(
        !dead_ids(&app, "advance_run").await.contains(&job_id),
        "the discarded job is still in advance_run:dead"
    );
    // `runs retry` no longer applies: the run is not parked any more.
    let refused = tokio::process::Command::new(crate::harness::processes::BOXOFFICE)
        .args(["runs", "retry", &run_id])
        .env("DATABASE_URL", &app.db.url)
        .env("REDIS_URL", crate::harness::redis_url())
        .env("BOXOFFICE_REDIS_PREFIX", &app.redis_prefix)
        .env("BOXOFFICE_ENV", "development")
        .output()
        .await
        .unwrap();
    assert!(
        !refused.status.success(),
        "a run failed for good was retried"
    );
    assert_eq!(run_status(&app, &run_id).await, "failed");
    let audited = count(
        &app.db.url,
        &format!(
            "SELECT 1 FROM audit_log WHERE action = 'dlq.discard' AND target_id = '{job_id}'
               AND details->>'fate' = 'fail' AND details->>'via' = 'cli'"
        ),
    )
    .await;
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn dlq_retry_all_requeues_every_dead_job_of_the_queue_and_the_runs_complete() {
    // The API leaves the first steps to the workers, who meet the poison.
    let app = TestApp::builder()
        .leaving_first_steps_to_workers()
        .spawn()
        .await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 15).await;

    // Three free checkouts, started while no worker runs and poisoned before
    // their first step: each start job dies.
    let mut runs = Vec::new();
    for i in 0..3 {
        let buyer = app.create_user(&[Role::Participant]).await;
        let r = start(
            &app.base_url,
            &app.client,
            &buyer,
            order(&event, 0, 1),
            Some(&format!("retry-all-{i}")),
        )
        .await;
        assert_eq!(r.status(), 202);
        let run_id = r.json::<Value>().await.unwrap()["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        poison(&app, &run_id).await;
        runs.push((buyer, run_id));
    }
    app.start_workers("http://127.0.0.1:1");
    for (_, run_id) in &runs {
        wait_status(&app, run_id, "failed", PARKED_WITHIN).await;
        dead_job_of(&app, run_id, Duration::from_secs(10)).await;
    }
    assert_eq!(dead_ids(&app, "advance_run").await.len(), 3);

    for (_, run_id) in &runs {
        cure(&app, run_id).await;
    }
    let outcome: Value = serde_json::from_str(
        &boxoffice(&app, &["dlq", "retry", "--all", "--queue", "advance_run"]).await,
    )
    .unwrap();
    assert_eq!(outcome["action"], "dlq.retry", "{outcome}");
    assert_eq!(outcome["jobs"].as_array().unwrap().len(), 3, "{outcome}");

    for (buyer, run_id) in &runs {
        let view = wait_for(&app, buyer, run_id, Duration::from_secs(30), |v| {
            v["status"] == "completed"
        })
        .await;
        assert_eq!(view["ticket_ids"].as_array().unwrap().len(), 1, "{view}");
    }
    assert!(dead_ids(&app, "advance_run").await.is_empty());
    let listed: Vec<Value> =
        serde_json::from_str(&boxoffice(&app, &["dlq", "list", "--json"]).await).unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 3, 0)
    );
    let audited = count(
        &app.db.url,
        "SELECT 1 FROM audit_log WHERE action = 'dlq.retry' AND details->>'via' = 'cli'",
    )
    .await;
    assert_eq!(audited, 3);
}

#[tokio::test]
async fn the_ops_api_discards_and_retries_dead_jobs_as_the_cli_does() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let admin = app.create_user(&[Role::Admin]).await;
    let (doomed, doomed_type, doomed_job) = parked_waiting_run(&app, "ops-api-discard").await;
    let (revived, revived_type, revived_job) = parked_waiting_run(&app, "ops-api-retry").await;
    let post = |path: String, body: Option<Value>, request_id: &'static str| {
        let mut req = app
            .client
            .post(app.url(&path))
            .header("authorization", admin.bearer())
            .header("x-request-id", request_id);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send()
    };

    // Bad input leaves the dead job where it was.
    let r = post(
        format!("/v1/ops/dlq/{doomed_job}/discard"),
        Some(serde_json::json!({ "fate": "forget" })),
        "ops-bad-fate",
    )
    .await
    .unwrap();
    crate::harness::assert_problem(r, 422, "invalid_body").await;
    let r = post(
        "/v1/ops/dlq/retry?queue=no_such_queue".into(),
        None,
        "ops-bad-queue",
    )
    .await
    .unwrap();
    crate::harness::assert_problem(r, 400, "invalid_request").await;
    assert_eq!(dead_ids(&app, "advance_run").await.len(), 2);

    // Compensating a run whose state does not decode cannot work: the
    // operator is told so, and nothing changes.
    let r = post(
        format!("/v1/ops/dlq/{doomed_job}/discard"),
        Some(serde_json::json!({ "fate": "compensate" })),
        "ops-discard-0",
    )
    .await
    .unwrap();
    crate::harness::assert_problem(r, 409, "not_applicable").await;
    assert_eq!(run_status(&app, &doomed).await, "failed");
    assert_eq!(dead_ids(&app, "advance_run").await.len(), 2);

    // With the cause fixed, that run is undone through the API.
    cure(&app, &doomed).await;
    let r = post(
        format!("/v1/ops/dlq/{doomed_job}/discard"),
        Some(serde_json::json!({ "fate": "compensate" })),
        "ops-discard-1",
    )
    .await
    .unwrap();
    assert_jobs(r, &doomed_job).await;
    wait_status(&app, &doomed, "compensated", Duration::from_secs(30)).await;
    assert_eq!(counters(&app.db.url, doomed_type).await, (10, 0, 0));

    // The other is cured. Its buyer may still pay its intent, so it cannot be
    // failed for good: nothing would refund the payment.
    cure(&app, &revived).await;
    let r = post(
        format!("/v1/ops/dlq/{revived_job}/discard"),
        Some(serde_json::json!({ "fate": "fail" })),
        "ops-discard-2",
    )
    .await
    .unwrap();
    let problem = crate::harness::assert_problem(r, 409, "not_applicable").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("payment intent"),
        "{problem}"
    );
    assert_eq!(run_status(&app, &revived).await, "failed");

    // Every dead job of the queue is retried: only the revived run's job is
    // left, and its run waits for the buyer's payment again.
    let r = post(
        "/v1/ops/dlq/retry?queue=advance_run".into(),
        None,
        "ops-retry-all-1",
    )
    .await
    .unwrap();
    assert_jobs(r, &revived_job).await;
    wait_status(&app, &revived, "waiting", Duration::from_secs(30)).await;
    assert_eq!(counters(&app.db.url, revived_type).await, (10, 0, 2));
    assert!(dead_ids(&app, "advance_run").await.is_empty());

    let audited = count(
        &app.db.url,
        &format!(
            "SELECT 1 FROM audit_log WHERE details->>'via' = 'api' AND actor_id = '{}'
               AND ((action = 'dlq.discard' AND target_id = '{doomed_job}' AND request_id = 'ops-discard-1')
                 OR (action = 'dlq.retry' AND target_id = '{revived_job}' AND request_id = 'ops-retry-all-1'))",
            admin.id
        ),
    )
    .await;
    assert_eq!(audited, 2);
}

/// The answer of an ops action is 200 and names the one job it acted on.
async fn assert_jobs(response: reqwest::Response, job_id: &str) {
    let status = response.status();
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["jobs"], serde_json::json!([job_id]), "{outcome}");
}
