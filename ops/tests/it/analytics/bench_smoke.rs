//! `boxoffice bench analytics` works end to end on a small event: it brings up
//! its own system, seeds, checks the endpoint's answer against what it seeded,
//! prints every figure and stops what it started. Timings are printed, never
//! asserted.

use std::time::Duration;

use crate::harness::processes::run_on_its_own;

/// Every line the command prints a figure on.
const FIGURES: [&str; 6] = [
    "seeded:",
    "plain indexed read (SQL):",
    "GET analytics, all slots live:",
    "moved",
    "GET analytics, past slots moved:",
    "analytics p95 < 50 ms:",
];

#[tokio::test]
async fn bench_analytics_prints_every_figure_on_a_small_event() {
    let out = run_on_its_own(
        &[
            "bench",
            "analytics",
            "--bookings",
            "3000",
            "--refunds",
            "600",
            "--reads",
            "200",
            "--ephemeral",
            "--timeout-secs",
            "150",
        ],
        Duration::from_secs(180),
    )
    .await;
    let stdout = out.stdout;
    for label in FIGURES {
        let line = stdout
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label:?} line in:\n{stdout}"));
        assert!(!line.trim().is_empty(), "{label} has no figure");
    }
    for reads in stdout.lines().filter(|l| l.starts_with("GET analytics,")) {
        assert!(reads.contains("(n = 200)"), "{reads}");
    }
    // A month of sales leaves past slots to move.
    let moved: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("moved "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the number of moved slots");
    assert!(moved > 0, "{stdout}");
    assert!(stdout.contains("seeded: 3000 bookings"), "{stdout}");
    assert!(stdout.contains("stopped everything it started"), "{stdout}");
}
