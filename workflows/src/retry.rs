//! How often and how soon a failed remote command is tried again.

use std::time::Duration;

/// Exponential backoff with full jitter, capped.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// Payment provider calls: about ten minutes of retrying in all.
    pub const REMOTE: RetryPolicy = RetryPolicy {
        max_attempts: 12,
        base: Duration::from_millis(250),
        cap: Duration::from_secs(60),
    };

    /// Whether another attempt is allowed after `attempt` failed ones.
    pub fn allows_another(&self, attempts_so_far: u32) -> bool {
        attempts_so_far < self.max_attempts
    }

    /// The wait before attempt `attempt + 1`, given a uniform random `jitter` in
    /// [0, 1): full jitter keeps many runs that failed together from retrying in
    /// lockstep (no retry storm when the provider comes back).
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = self.base.as_secs_f64() * 2f64.powi(attempt.min(30) as i32);
        let ceiling = exp.min(self.cap.as_secs_f64());
        let jitter = jitter.clamp(0.0, 1.0);
        // Never zero: half the ceiling at least, the rest random.
        Duration::from_secs_f64(ceiling * (0.5 + 0.5 * jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let p = RetryPolicy::REMOTE;
        assert_eq!(p.delay(0, 1.0), Duration::from_millis(250));
        assert_eq!(p.delay(1, 1.0), Duration::from_millis(500));
        assert_eq!(p.delay(3, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(20, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn jitter_spreads_delays_between_half_and_full() {
        let p = RetryPolicy::REMOTE;
        assert_eq!(p.delay(4, 0.0), Duration::from_secs(2));
        assert_eq!(p.delay(4, 1.0), Duration::from_secs(4));
        let mid = p.delay(4, 0.5);
        assert!(mid > Duration::from_secs(2) && mid < Duration::from_secs(4));
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy::REMOTE;
        assert!(p.allows_another(0));
        assert!(p.allows_another(11));
        assert!(!p.allows_another(12));
    }
}
