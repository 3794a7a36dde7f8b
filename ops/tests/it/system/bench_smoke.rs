//! `boxoffice bench checkout` works end to end on a tiny sale: it brings up its
//! own system, prints every figure, sells exactly the capacity and stops what
//! it started. Timings are printed, never asserted.

use std::time::Duration;

use crate::harness::processes::run_on_its_own;

/// Every line the command prints a figure on.
const FIGURES: [&str; 31] = [
    "raw single-row rate:",
    "Boxoffice's sale of a hold alone:",
    "holds/s:",
    "completed checkouts/s:",
    "POST /v1/checkouts:",
    "decision, winners (buyer):",
    "decision, losers (buyer):",
    "start → awaiting payment:",
    "pay → completed (buyer):",
    "webhook → completed (server):",
    "step → step (server):",
    "GET /v1/workflows/{id}:",
    "oversold:",
    "outcomes:",
    "CPU per completed checkout:",
    "CPU per hold decision:",
    "per completed checkout:",
    "peak RSS:",
    "open descriptors, most:",
    "connections dropped at accept:",
    "holds ≥ 100 % of raw rate:",
    "decision p50 ≤ 30 ms (winners):",
    "decision p50 ≤ 30 ms (losers):",
    "created → first step p50 ≤ 50 ms:",
    "step → step p50 ≤ 10 ms:",
    "step → step p99 ≤ 50 ms:",
    "POST /v1/checkouts p99 ≤ 500 ms:",
    "status reads p99 ≤ 10 ms:",
    "status reads by wrk:",
    "wrk status reads ≥ 20,000/s:",
    "wrk status reads p99 ≤ 10 ms:",
];

fn figure<'a>(output: &'a str, label: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{output}"))
}

/// `bench checkout` of 40 buyers for 10 seats on its own system, with
/// `options`; what it printed.
async fn sale_of_40_for_10(options: &[&str]) -> String {
    let mut args = vec![
        "bench",
        "checkout",
        "--buyers",
        "40",
        "--capacity",
        "10",
        "--ephemeral",
        "--timeout-secs",
        "150",
    ];
    args.extend_from_slice(options);
    run_on_its_own(&args, Duration::from_secs(180)).await.stdout
}

/// Exactly the 10 seats sold, and every buyer saw its checkout end.
fn sold_exactly_the_seats(stdout: &str) {
    assert!(
        figure(stdout, "oversold:").starts_with("0 (capacity 10, sold 10, tickets 10, held 0)"),
        "{stdout}"
    );
    assert!(
        figure(stdout, "outcomes:").starts_with("10 completed, 30 sold out, 0 other, 0 errors"),
        "{stdout}"
    );
}

#[tokio::test]
async fn bench_checkout_prints_every_figure_and_oversells_nothing() {
    let stdout = sale_of_40_for_10(&[
        "--raw-secs",
        "1",
        "--status-reads",
        "200",
        "--status-load-secs",
        "1",
    ])
    .await;

    for label in FIGURES {
        let value = figure(&stdout, label);
        assert!(!value.is_empty(), "{label} has no figure:\n{stdout}");
    }
    // Every latency has samples; the buyers all saw their checkout end.
    for label in [
        "POST /v1/checkouts:",
        "decision, winners (buyer):",
        "decision, losers (buyer):",
        "start → awaiting payment:",
        "pay → completed (buyer):",
        "webhook → completed (server):",
        "step → step (server):",
        "GET /v1/workflows/{id}:",
    ] {
        assert!(
            figure(&stdout, label).starts_with("p50 "),
            "{label} has no samples:\n{stdout}"
        );
    }
    sold_exactly_the_seats(&stdout);
    // The step → step gaps by the steps of their two jobs: here every one is
    // a winner's, from its hold (taken with its start) to its payment intent.
    assert!(
        figure(&stdout, "start → creating_payment_intent:").ends_with("(n = 10)"),
        "{stdout}"
    );
    let samples = |summary: &str| -> usize {
        summary
            .rsplit_once("(n = ")
            .and_then(|(_, n)| n.trim_end_matches(')').parse().ok())
            .unwrap_or_else(|| panic!("no count in {summary:?}:\n{stdout}"))
    };
    let by_steps: usize = stdout
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains(" → ") && l.contains(": p50 "))
        .map(&samples)
        .sum();
    assert_eq!(
        by_steps,
        samples(figure(&stdout, "step → step (server):")),
        "the gaps by steps are not all the gaps:\n{stdout}"
    );
    // The sales of held seats, one transaction each, on the baseline's type.
    let sales_alone = figure(&stdout, "Boxoffice's sale of a hold alone:");
    assert!(
        sales_alone.contains(" sales/s (") && !sales_alone.starts_with("0 sales/s"),
        "{stdout}"
    );
    // Its Postgres keeps commit times: a hold counts from its commit.
    assert!(
        figure(&stdout, "holds/s:")
            .contains("10 holds, from the first one's transaction to the last one's commit in "),
        "{stdout}"
    );
    assert!(
        figure(&stdout, "GET /v1/workflows/{id}:").contains(" 0 failed;"),
        "{stdout}"
    );
    // What the sale cost: CPU of every kind of process, and the servers'
    // own counts (its Postgres preloads pg_stat_statements).
    let cpu = figure(&stdout, "CPU per completed checkout:");
    for kind in ["serve ", "work ", "postgres ", "redis ", "Boxoffice's own "] {
        assert!(cpu.contains(kind), "no {kind}in {cpu:?}:\n{stdout}");
    }
    let counts = figure(&stdout, "per completed checkout:");
    assert!(
        !counts.starts_with("n/a") && !counts.contains(" n/a "),
        "{counts:?}:\n{stdout}"
    );
    assert!(stdout.contains("statements by database time"), "{stdout}");
    // A real load generator read a run's status.
    assert!(
        figure(&stdout, "status reads by wrk:").contains(" requests/s, p50 "),
        "{stdout}"
    );
    assert!(
        figure(&stdout, "peak RSS:").contains("serve")
            && figure(&stdout, "peak RSS:").contains("MiB"),
        "{stdout}"
    );
    // The API holds its pools' connections to Postgres (at least eight) and
    // Redis, its listener and the buyers' connections.
    let serve_descriptors: usize = figure(&stdout, "open descriptors, most:")
        .split(", ")
        .find_map(|each| each.strip_prefix("serve "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count for serve:\n{stdout}"));
    assert!(serve_descriptors >= 10, "{stdout}");
    // The kernel's count of connections dropped for a full listen queue is
    // the host's: other tests running beside this one may add to it.
    assert!(
        figure(&stdout, "connections dropped at accept:")
            .split(' ')
            .next()
            .is_some_and(|n| n.parse::<u64>().is_ok()),
        "{stdout}"
    );
    assert!(stdout.contains("stopped everything it started"), "{stdout}");

    // Nothing it started is left: no data folder of its own remains.
    let data_dir = stdout
        .lines()
        .find_map(|l| l.split("(data in ").nth(1))
        .map(|rest| rest.trim_end_matches(')').to_owned())
        .expect("the data folder is printed");
    assert!(
        !std::path::Path::new(&data_dir).exists(),
        "{data_dir} was left behind"
    );
}

#[tokio::test]
async fn bench_checkout_over_http2_sells_the_capacity_through_one_connection() {
    let logs = std::env::temp_dir().join(format!("bench-logs-{}", uuid::Uuid::new_v4().simple()));
    let stdout = sale_of_40_for_10(&[
        "--http2",
        "--raw-secs",
        "0.5",
        "--status-reads",
        "100",
        "--status-load-secs",
        "0",
        "--processes-log",
        "warn,boxoffice_api::routes::checkouts::gathered=debug",
        "--keep-logs",
        logs.to_str().unwrap(),
    ])
    .await;
    assert!(
        stdout.contains("sale: starting (40 buyers, buyers over 1 HTTP/2 connection to each API)"),
        "{stdout}"
    );
    sold_exactly_the_seats(&stdout);
    // The reads after the sale went over the same kind of connection.
    assert!(
        figure(&stdout, "GET /v1/workflows/{id}:").contains("(8 clients, 0 failed;"),
        "{stdout}"
    );
    // The processes logged at the filter given, and their logs were kept.
    let kept = logs.join("this-build");
    assert!(
        stdout.contains(&format!("logs of the processes kept in {}", kept.display())),
        "{stdout}"
    );
    let serve_log = std::fs::read_to_string(kept.join("serve-0.log")).unwrap();
    let _ = std::fs::remove_dir_all(&logs);
    assert!(
        serve_log.contains("a batch of checkout starts"),
        "{serve_log}"
    );
}
