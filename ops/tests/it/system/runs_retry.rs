//! `boxoffice runs retry` on a run parked in the middle of its checkout: it
//! resumes at the step that failed, with what it had done kept (its holds, its
//! payment intent, the payment signal that arrived meanwhile), and completes.

use std::time::Duration;

use serde_json::Value;

use crate::checkout_support::{count, counters, wait_for};
use crate::harness::TestApp;
use crate::ops_tools::waiting_paid_run;
use crate::system::poison::{boxoffice, cure, dead_ids, dead_job_of, poison, wait_status};

#[tokio::test]
async fn runs_retry_resumes_a_failed_run_at_its_failed_step_and_completes() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let (buyer, run_id, event) = waiting_paid_run(&app, "runs-retry-1").await;
    let view = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), |v| {
        v["payment"]["intent_id"].is_string()
    })
    .await;
    let intent_id = view["payment"]["intent_id"].as_str().unwrap().to_owned();

    // The buyer pays while the run's state does not decode: the advance that
    // would deliver the payment fails until the run is parked.
    poison(&app, &run_id).await;
    sandbox.pay(&intent_id).await;
    wait_status(&app, &run_id, "failed", Duration::from_secs(45)).await;
    let job = dead_job_of(&app, &run_id, Duration::from_secs(10)).await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    let shown: Value =
        serde_json::from_str(&boxoffice(&app, &["runs", "show", &run_id]).await).unwrap();
    assert_eq!(shown["step"], "awaiting_payment", "{shown}");
    assert_eq!(shown["last_error"]["resume_status"], "waiting", "{shown}");

    cure(&app, &run_id).await;
    let outcome: Value =
        serde_json::from_str(&boxoffice(&app, &["runs", "retry", &run_id]).await).unwrap();
    assert_eq!(outcome["action"], "run.retry", "{outcome}");
    assert_eq!(outcome["run_status"], "waiting", "{outcome}");
    assert_eq!(
        outcome["detail"], "resumed at step awaiting_payment",
        "{outcome}"
    );
    // The run's dead job is superseded by the retry and dropped.
    assert_eq!(outcome["jobs"], serde_json::json!([job_id]), "{outcome}");
    assert!(!dead_ids(&app, "advance_run").await.contains(&job_id));

    let done = wait_for(&app, &buyer, &run_id, Duration::from_secs(30), |v| {
        v["status"] == "completed"
    })
    .await;
    assert_eq!(done["ticket_ids"].as_array().unwrap().len(), 2, "{done}");
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 2, 0)
    );
    // Resumed, not restarted: one hold, one intent, one charge.
    let holds = count(
        &app.db.url,
        &format!("SELECT 1 FROM holds WHERE run_id = '{run_id}'"),
    )
    .await;
    assert_eq!(holds, 1);
    let stats = sandbox.stats().await;
    assert_eq!(stats["intents_created"], 1, "{stats}");
    assert_eq!(stats["charges_by_run_id"][&run_id], 1, "{stats}");
    let audited = count(
        &app.db.url,
        &format!(
            "SELECT 1 FROM audit_log WHERE action = 'run.retry' AND target_id = '{run_id}'
               AND details->>'via' = 'cli' AND details->>'step_before' = 'awaiting_payment'"
        ),
    )
    .await;
    assert_eq!(audited, 1);
}
