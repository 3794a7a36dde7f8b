//! Two builds' sales side by side (`--baseline-bin`): what a checkout costs in
//! each, and how many times less this build spends.

use super::report::{Figures, line, per_sec};
use super::stats::ms;

/// Per completed checkout, in milliseconds of CPU.
fn per_checkout(seconds: f64, figures: &Figures) -> f64 {
    seconds * 1000.0 / (figures.completed as f64).max(1.0)
}

fn per_checkout_count(n: Option<i64>, figures: &Figures) -> Option<f64> {
    n.map(|n| n as f64 / (figures.completed as f64).max(1.0))
}

/// One of the servers' counts, read from a sale's figures.
type Count = fn(&Figures) -> Option<i64>;

/// `12.0 ms → 3.0 ms (4.0× less)`.
fn change(before: Option<f64>, after: Option<f64>, unit: fn(f64) -> String) -> String {
    match (before, after) {
        (Some(b), Some(a)) if a > 0.0 => {
            let times = b / a;
            let how = if times >= 1.0 {
                format!("{times:.1}× less")
            } else {
                format!("{:.1}× more", 1.0 / times)
            };
            format!("{} → {} ({how})", unit(b), unit(a))
        }
        (b, a) => format!(
            "{} → {}",
            b.map_or_else(|| "n/a".into(), unit),
            a.map_or_else(|| "n/a".into(), unit)
        ),
    }
}

fn count(n: f64) -> String {
    format!("{n:.1}")
}

pub fn print(baseline: &Figures, this: &Figures) {
    println!("\nbaseline → this build, per completed checkout:");
    line(
        "  CPU of serve + work:",
        change(
            Some(per_checkout(baseline.own_cpu, baseline)),
            Some(per_checkout(this.own_cpu, this)),
            ms,
        ),
    );
    for kind in ["serve", "work", "postgres", "redis"] {
        let of = |f: &Figures| f.cpu.get(kind).map(|t| per_checkout(*t, f));
        line(
            &format!("  CPU of {kind}:"),
            change(of(baseline), of(this), ms),
        );
    }
    line(
        "  CPU with postgres and redis:",
        change(
            Some(per_checkout(baseline.server_cpu, baseline)),
            Some(per_checkout(this.server_cpu, this)),
            ms,
        ),
    );
    let counts: [(&str, Count); 3] = [
        ("  Postgres transactions:", |f| f.counts.transactions),
        ("  Postgres statements:", |f| f.counts.statements),
        ("  Redis commands:", |f| f.counts.redis_commands),
    ];
    for (label, of) in counts {
        line(
            label,
            change(
                per_checkout_count(of(baseline), baseline),
                per_checkout_count(of(this), this),
                count,
            ),
        );
    }
    println!("\nbaseline → this build:");
    line(
        "  holds/s (raw):",
        format!(
            "{} ({:.0}) → {} ({:.0})",
            per_sec(baseline.holds_per_sec),
            baseline.raw_per_sec,
            per_sec(this.holds_per_sec),
            this.raw_per_sec
        ),
    );
    let latency = |b: Option<f64>, a: Option<f64>| change(b, a, ms);
    line(
        "  POST /v1/checkouts p99:",
        latency(baseline.post_p99, this.post_p99),
    );
    line(
        "  step → step p50:",
        latency(baseline.step_p50, this.step_p50),
    );
    line(
        "  status reads p99:",
        latency(baseline.status_p99, this.status_p99),
    );
    line(
        "  status reads by wrk:",
        format!(
            "{} → {}",
            per_sec(baseline.wrk_rate),
            per_sec(this.wrk_rate)
        ),
    );
    line(
        "  peak RSS, all processes:",
        format!(
            "{} → {}",
            super::rss::mib(baseline.peak_rss_kib),
            super::rss::mib(this.peak_rss_kib)
        ),
    );
}
