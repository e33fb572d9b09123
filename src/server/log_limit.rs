//! At most one log line a second for an event that repeats in bursts (an accept that
//! fails for want of file descriptors fails alike for every waiting connection), with
//! the count of those left unsaid.

use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(super) struct LogLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// `Some(unsaid)` when a line may be logged now: how many were not since the last.
    pub(super) fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < Duration::from_secs(1) => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_with_the_count_of_the_rest() {
        let mut limiter = LogLimiter::default();
        let start = Instant::now();
        assert_eq!(limiter.allow(start), Some(0));
        for _ in 0..5 {
            assert_eq!(limiter.allow(start + Duration::from_millis(500)), None);
        }
        assert_eq!(limiter.allow(start + Duration::from_secs(1)), Some(5));
    }
}
