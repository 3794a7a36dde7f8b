//! Latency samples and their percentiles.

use std::time::Duration;

/// Durations in milliseconds, summarised as p50/p95/p99 (nearest rank).
#[derive(Debug, Default, Clone)]
pub struct Samples {
    millis: Vec<f64>,
}

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.millis.push(d.as_secs_f64() * 1000.0);
    }

    pub fn push_millis(&mut self, ms: f64) {
        self.millis.push(ms);
    }

    pub fn extend(&mut self, other: Samples) {
        self.millis.extend(other.millis);
    }

    pub fn len(&self) -> usize {
        self.millis.len()
    }

    pub fn is_empty(&self) -> bool {
        self.millis.is_empty()
    }

    /// The `p`-th percentile (0 < p ≤ 100) by nearest rank; `None` without samples.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.millis.is_empty() {
            return None;
        }
        let mut sorted = self.millis.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        Some(sorted[rank.clamp(1, sorted.len()) - 1])
    }

    /// `p50 1.2 ms  p95 3.4 ms  p99 5.6 ms  (n = 100)`.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "no samples".into();
        }
        match (
            self.percentile(50.0),
            self.percentile(95.0),
            self.percentile(99.0),
        ) {
            (Some(p50), Some(p95), Some(p99)) => format!(
                "p50 {}  p95 {}  p99 {}  (n = {})",
                ms(p50),
                ms(p95),
                ms(p99),
                self.len()
            ),
            _ => "no samples".into(),
        }
    }
}

/// A duration in milliseconds with sensible precision.
pub fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2} ms")
    } else if value < 100.0 {
        format!("{value:.1} ms")
    } else {
        format!("{value:.0} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::default();
        for i in 1..=100 {
            s.push_millis(f64::from(i));
        }
        assert_eq!(s.percentile(50.0), Some(50.0));
        assert_eq!(s.percentile(95.0), Some(95.0));
        assert_eq!(s.percentile(99.0), Some(99.0));
        assert_eq!(s.percentile(100.0), Some(100.0));
        assert_eq!(Samples::default().percentile(50.0), None);
        let mut one = Samples::default();
        one.push(Duration::from_millis(7));
        assert_eq!(one.percentile(99.0), Some(7.0));
    }
}
