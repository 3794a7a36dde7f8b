//! `boxoffice chaos --minutes 2`: the whole system (two APIs, two workers,
//! its own Postgres, Redis, SMTP server and payment sandbox) under a mixed
//! load of every workflow while faults of at least four kinds are injected,
//! drawn from a fixed seed. Every run must finish, the ledger audit (against
//! the provider's records too) must be clean, no process may die on its own,
//! and the system must come back after every fault. The report is printed.

use std::time::Duration;

use serde_json::Value;

use super::fault_support::TempDir;
use crate::harness::processes::run_on_its_own;

/// Outcomes the mixed load must have reached at least once: each workflow
/// and each kind of operation really happened.
const MUST_HAPPEN: [&str; 8] = [
    "browse: 200",
    "checkout: completed",
    "checkout with coupon: completed",
    "checkout: declined at the provider (the hold then expires)",
    "refund: completed",
    "waitlist join: 201",
    "check-in: 200",
    "event cancellation: 202",
];

#[tokio::test]
async fn a_two_minute_soak_with_faults_finishes_every_run_and_keeps_the_books() {
    let dir = TempDir::new("boxoffice-chaos-report");
    let report_path = dir.0.join("report.json");
    // Two minutes of load, the last recovery probe, the drain (holds of one
    // minute) and the audit.
    let report_arg = report_path.display().to_string();
    let args = [
        "chaos",
        "--minutes",
        "2",
        "--seed",
        "12",
        "--report",
        &report_arg,
    ];
    let out = run_on_its_own(&args, Duration::from_secs(600)).await;
    let stdout = out.stdout;

    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert!(
        report["fault_kinds"].as_u64().unwrap() >= 4,
        "fewer than 4 kinds of fault: {}",
        report["faults"]
    );
    for fault in report["faults"].as_array().unwrap() {
        assert!(
            fault["recovered_secs"].is_f64(),
            "the system did not come back after {fault}"
        );
    }
    assert_eq!(report["unfinished_runs"], 0, "{}", report["runs"]);
    assert_eq!(report["audit_violations"], serde_json::json!([]));
    assert_eq!(report["unexpected_exits"], serde_json::json!([]));
    let operations = report["operations"].as_object().unwrap();
    for outcome in MUST_HAPPEN {
        assert!(
            operations.get(outcome).and_then(Value::as_u64) > Some(0),
            "no {outcome:?} in {operations:?}"
        );
    }
    // Every kind of run ran and none needs an operator.
    for kind in [
        "checkout",
        "refund",
        "waitlist_offer",
        "reminder",
        "event_cancellation",
    ] {
        let statuses = report["runs"][kind].as_object();
        assert!(
            statuses
                .and_then(|s| s.get("completed"))
                .and_then(Value::as_i64)
                > Some(0),
            "no completed {kind} run: {}",
            report["runs"]
        );
        assert!(
            statuses.is_some_and(|s| !s.contains_key("failed")),
            "{kind} runs failed: {}",
            report["runs"]
        );
    }
    assert!(stdout.contains("verdict: PASS"), "{stdout}");
}
