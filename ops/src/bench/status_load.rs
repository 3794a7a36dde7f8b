//! Status reads under a real load generator: `wrk` (from the OS packages,
//! installed when missing) reads one run's `GET /v1/workflows/{id}` as fast as
//! it can, and prints requests/s and latency percentiles, beside the API's own
//! CPU share for the same seconds.

use std::time::Duration;

use anyhow::Context;
use tokio::process::Command;

/// What `wrk` measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkFigures {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers other than 2xx or 3xx, and socket errors.
    pub failed: u64,
}

/// `wrk` on the PATH, installed from the OS packages when it is not (as root).
async fn ensure_wrk() -> anyhow::Result<()> {
    let found = Command::new("wrk").arg("--version").output().await.is_ok();
    if found {
        return Ok(());
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "wrk"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .await
        .context("installing wrk (apt-get)")?;
    anyhow::ensure!(status.success(), "apt-get install wrk failed");
    Ok(())
}

/// `threads` threads and `connections` connections of `wrk` on `url` for
/// `duration`.
pub async fn run(
    url: &str,
    authorization: &str,
    duration: Duration,
    threads: usize,
    connections: usize,
) -> anyhow::Result<WrkFigures> {
    ensure_wrk().await?;
    let out = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--latency")
        .args(["-H", &format!("authorization: {authorization}")])
        .arg(url)
        .output()
        .await
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "wrk failed: {text}");
    parse(&text).with_context(|| format!("reading wrk's output:\n{text}"))
}

fn parse(text: &str) -> Option<WrkFigures> {
    let value_after = |label: &str| -> Option<&str> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(str::trim)
    };
    let requests_per_sec = value_after("Requests/sec:")?.parse().ok()?;
    let p50_ms = millis(value_after("50%")?)?;
    let p99_ms = millis(value_after("99%")?)?;
    let non_2xx: u64 = value_after("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // "Socket errors: connect 0, read 0, write 0, timeout 0"
    let socket: u64 = value_after("Socket errors:").map_or(0, |v| {
        v.split(',')
            .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
            .sum()
    });
    Some(WrkFigures {
        requests_per_sec,
        p50_ms,
        p99_ms,
        failed: non_2xx + socket,
    })
}

/// `812.00us`, `1.23ms`, `2.00s` → milliseconds.
fn millis(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let text = "Running 5s test @ http://127.0.0.1:3000/v1/workflows/x
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.90ms    2.11ms  40.12ms   80.00%
  Latency Distribution
     50%  812.00us
     75%    7.93ms
     90%    9.21ms
     99%   11.40ms
  23180 requests in 5.00s, 20.1MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   4635.12
Transfer/sec:      4.02MB
";
        assert_eq!(
            parse(text),
            Some(WrkFigures {
                requests_per_sec: 4635.12,
                p50_ms: 0.812,
                p99_ms: 11.4,
                failed: 7,
            })
        );
    }
}
