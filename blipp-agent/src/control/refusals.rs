//! Counting refused control connections so that a flood of them writes a
//! line per interval rather than one per connection: 5000 refused
//! connections wrote 4,878 WARN lines (issue 16), drowning everything
//! else in the log and filling the disk it is on.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one line per reason per this long.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Refusals of one reason since its last line.
#[derive(Debug, Default)]
pub struct Refusals {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_line: Option<Instant>,
    unlogged: u64,
}

impl Refusals {
    /// Records one refusal at `now`. `Some(n)` when a line is due: the
    /// first refusal, or the first after [`LOG_EVERY`], with `n` the
    /// refusals it stands for (this one and those not logged since).
    pub fn record(&self, now: Instant) -> Option<u64> {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.unlogged += 1;
        let due = s
            .last_line
            .is_none_or(|t| now.saturating_duration_since(t) >= LOG_EVERY);
        if !due {
            return None;
        }
        s.last_line = Some(now);
        Some(std::mem::take(&mut s.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_the_rest() {
        let r = Refusals::default();
        let t0 = Instant::now();
        assert_eq!(r.record(t0), Some(1), "the first is logged");
        let logged: Vec<_> = (0..4999)
            .filter_map(|i| r.record(t0 + Duration::from_millis(i)))
            .collect();
        assert!(logged.is_empty(), "{logged:?}");
        assert_eq!(r.record(t0 + LOG_EVERY), Some(5000), "the rest, counted");
        assert_eq!(r.record(t0 + LOG_EVERY + Duration::from_secs(1)), None);
    }
}
