//! `boxoffice bench analytics` works end to end on a small event: it brings up
//! its own system, seeds, checks the endpoint's answer against what it seeded,
//! prints every figure and stops what it started. Timings are printed, never
//! asserted.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::harness::processes::BOXOFFICE;

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
    let child = Command::new(BOXOFFICE)
        .args([
            "bench",
            "analytics",
            "--bookings",
            "3000",
            "--refunds",
            "600",
        ])
        .args(["--reads", "200", "--ephemeral", "--timeout-secs", "150"])
        // Its own system: nothing of the test suite's environment.
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BOXOFFICE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting boxoffice bench");
    let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("the benchmark bounds its own run time")
        .expect("the benchmark's output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "bench failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
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
