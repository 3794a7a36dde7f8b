//! What the checkout path is judged by (issue 16's goals), each figure of a
//! sale printed with `met` or `NOT MET`.

use super::report::{line, per_sec};
use super::stats::{Samples, ms};

const TARGET_HOLD_RATIO: f64 = 1.0;
const TARGET_DECISION_P50_MS: f64 = 30.0;
const TARGET_FIRST_STEP_P50_MS: f64 = 50.0;
const TARGET_STEP_P50_MS: f64 = 10.0;
const TARGET_STEP_P99_MS: f64 = 50.0;
const TARGET_POST_P99_MS: f64 = 500.0;
const TARGET_STATUS_P99_MS: f64 = 10.0;
const TARGET_STATUS_RATE: f64 = 20_000.0;

/// The figures of one sale that a target judges.
pub struct Judged<'a> {
    pub holds_per_sec: Option<f64>,
    pub raw_per_sec: f64,
    /// The buyers' decisions, winners and losers apart.
    pub winners: &'a Samples,
    pub losers: &'a Samples,
    pub first_step_waits: &'a Samples,
    pub step_gaps: &'a Samples,
    pub post_p99: Option<f64>,
    pub status_p99: Option<f64>,
    /// `wrk`'s rate and p99, when it ran (each `None` when it failed).
    pub wrk: Option<(Option<f64>, Option<f64>)>,
}

/// Prints the `targets:` section.
pub fn print(judged: &Judged<'_>) {
    println!("\ntargets:");
    let ratio = judged
        .holds_per_sec
        .map(|h| h / judged.raw_per_sec.max(1e-9));
    line(
        "  holds ≥ 100 % of raw rate:",
        match ratio {
            Some(r) => format!(
                "{:.1} % ({} vs {:.0} holds/s)  {}",
                r * 100.0,
                per_sec(judged.holds_per_sec),
                judged.raw_per_sec,
                verdict(r >= TARGET_HOLD_RATIO)
            ),
            None => "n/a (fewer than two holds)  NOT MET".into(),
        },
    );
    let latencies = [
        (
            "  decision p50 ≤ 30 ms (winners):",
            judged.winners.percentile(50.0),
            TARGET_DECISION_P50_MS,
        ),
        (
            "  decision p50 ≤ 30 ms (losers):",
            judged.losers.percentile(50.0),
            TARGET_DECISION_P50_MS,
        ),
        (
            "  created → first step p50 ≤ 50 ms:",
            judged.first_step_waits.percentile(50.0),
            TARGET_FIRST_STEP_P50_MS,
        ),
        (
            "  step → step p50 ≤ 10 ms:",
            judged.step_gaps.percentile(50.0),
            TARGET_STEP_P50_MS,
        ),
        (
            "  step → step p99 ≤ 50 ms:",
            judged.step_gaps.percentile(99.0),
            TARGET_STEP_P99_MS,
        ),
        (
            "  POST /v1/checkouts p99 ≤ 500 ms:",
            judged.post_p99,
            TARGET_POST_P99_MS,
        ),
        (
            "  status reads p99 ≤ 10 ms:",
            judged.status_p99,
            TARGET_STATUS_P99_MS,
        ),
    ];
    for (label, figure, target) in latencies {
        at_most(label, figure, target);
    }
    if let Some((wrk_rate, wrk_p99)) = judged.wrk {
        line(
            "  wrk status reads ≥ 20,000/s:",
            wrk_rate.map_or_else(
                || "n/a  NOT MET".into(),
                |r| format!("{r:.0}/s  {}", verdict(r >= TARGET_STATUS_RATE)),
            ),
        );
        at_most(
            "  wrk status reads p99 ≤ 10 ms:",
            wrk_p99,
            TARGET_STATUS_P99_MS,
        );
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

/// A latency target: met when the figure is at most `target` ms.
fn at_most(label: &str, figure: Option<f64>, target: f64) {
    line(
        label,
        figure.map_or_else(
            || "n/a  NOT MET".into(),
            |p| format!("{}  {}", ms(p), verdict(p <= target)),
        ),
    );
}
