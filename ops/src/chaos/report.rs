//! The soak's report: what was done, what was broken and how fast the system
//! came back, how every run ended, and the audit's verdict. Printed for a
//! person, and written as JSON with `--report`.

use std::collections::{BTreeMap, BTreeSet};

use boxoffice_models::ledger_audit::Violation;
use serde::Serialize;

use super::faults::Injected;

#[derive(Debug, Serialize)]
pub struct Report {
    pub seed: u64,
    pub minutes: f64,
    pub apis: usize,
    pub workers: usize,
    pub buyers: usize,
    /// `"operation: outcome"` → count.
    pub operations: BTreeMap<String, u64>,
    pub operations_total: u64,
    /// HTTP answers by class (`2xx`, `4xx <code>`, `5xx`, `unreachable`).
    pub http_answers: BTreeMap<String, u64>,
    pub faults: Vec<Injected>,
    pub fault_kinds: usize,
    /// Processes that died without being killed: `(name, seconds)`.
    pub unexpected_exits: Vec<(String, f64)>,
    /// kind → status → runs.
    pub runs: BTreeMap<String, BTreeMap<String, i64>>,
    pub unfinished_runs: i64,
    pub drain_secs: f64,
    pub offers_declined_at_the_end: u64,
    pub emails_received: u64,
    /// Copies of a message received again (same `Message-ID`): a send cut
    /// off by a crash after the server took it.
    pub emails_resent: u64,
    pub audit_violations: Vec<Violation>,
    /// `ERROR` lines the processes logged, by message (first 200 characters
    /// after the level), with their counts.
    pub errors_logged: BTreeMap<String, u64>,
}

impl Report {
    pub fn kinds(faults: &[Injected]) -> usize {
        faults
            .iter()
            .map(|f| format!("{:?}", f.kind))
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Every run finished, the audit clean, no process died by itself.
    pub fn passed(&self) -> bool {
        self.unfinished_runs == 0
            && self.audit_violations.is_empty()
            && self.unexpected_exits.is_empty()
    }

    pub fn print(&self) {
        println!();
        println!(
            "=== boxoffice chaos report: seed {}, {} min, {} APIs, {} workers, {} buyers ===",
            self.seed, self.minutes, self.apis, self.workers, self.buyers
        );
        println!("operations: {} in all", self.operations_total);
        for (what, n) in &self.operations {
            println!("  {n:>6}  {what}");
        }
        println!("HTTP answers:");
        for (class, n) in &self.http_answers {
            println!("  {n:>6}  {class}");
        }
        println!(
            "faults: {} injected, {} kinds",
            self.faults.len(),
            self.fault_kinds
        );
        for f in &self.faults {
            println!(
                "  {:>6.1} s  {:<28} {:<9} lasted {:>5.1} s  recovered in {}",
                f.at_secs,
                format!("{:?}", f.kind),
                f.target,
                f.lasted_secs,
                f.recovered_secs
                    .map_or_else(|| "—".to_owned(), |s| format!("{s:.1} s"))
            );
        }
        let recoveries: Vec<f64> = self
            .faults
            .iter()
            .filter_map(|f| f.recovered_secs)
            .collect();
        if let Some(worst) = recoveries.iter().copied().reduce(f64::max) {
            println!(
                "  recovery: mean {:.1} s, worst {worst:.1} s",
                recoveries.iter().sum::<f64>() / recoveries.len() as f64
            );
        }
        let mut by_kind: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
        for f in &self.faults {
            by_kind
                .entry(format!("{:?}", f.kind))
                .or_default()
                .push(f.recovered_secs);
        }
        for (kind, recovered) in &by_kind {
            let times: Vec<f64> = recovered.iter().flatten().copied().collect();
            let worst = times.iter().copied().fold(0.0, f64::max);
            let missed = match recovered.len() - times.len() {
                0 => String::new(),
                n => format!(", {n} not within the limit"),
            };
            println!(
                "  {kind:<28} {:>3} times, recovered in mean {:.1} s, worst {worst:.1} s{missed}",
                recovered.len(),
                times.iter().sum::<f64>() / times.len().max(1) as f64,
            );
        }
        if self.unexpected_exits.is_empty() {
            println!("processes: none died on its own");
        } else {
            for (name, at) in &self.unexpected_exits {
                println!("processes: {name} DIED ON ITS OWN at {at:.1} s");
            }
        }
        println!(
            "runs by final status (drained in {:.1} s; {} offers declined by their buyers at the end):",
            self.drain_secs, self.offers_declined_at_the_end
        );
        for (kind, statuses) in &self.runs {
            let line: Vec<String> = statuses.iter().map(|(s, n)| format!("{s} {n}")).collect();
            println!("  {kind:<20} {}", line.join(", "));
        }
        println!("  unfinished: {}", self.unfinished_runs);
        println!(
            "emails: {} received by the SMTP server, {} resent copies",
            self.emails_received, self.emails_resent
        );
        let errors: u64 = self.errors_logged.values().sum();
        println!("errors logged by the processes: {errors}");
        for (message, n) in &self.errors_logged {
            println!("  {n:>6}  {message}");
        }
        if self.audit_violations.is_empty() {
            println!("audit: clean (the books, and the books against the provider)");
        } else {
            println!("audit: {} violation(s)", self.audit_violations.len());
            for v in &self.audit_violations {
                println!("  VIOLATION {v}");
            }
        }
        println!("verdict: {}", if self.passed() { "PASS" } else { "FAIL" });
    }
}
