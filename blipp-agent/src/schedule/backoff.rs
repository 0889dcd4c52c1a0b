//! `adaptive.backoff`: collect often while a probe's values change, less
//! and less often while they stay the same. For probes whose values are
//! mostly constant — a link's capacity, a Nagios check that is OK for
//! days, a command watching a configuration — a fleet then pays for
//! frequent collections only while something happens.
//!
//! The probe collects every `every` seconds. After a collection whose
//! samples equal the previous collection's (same subjects, event types and
//! values; times aside), the interval is multiplied by `factor` (default
//! 2), up to `max` seconds; after one that differs it is `every` again.
//! The arbiter tells the schedule which it was ([`BackoffInstants::observe`]).

use std::hash::{Hash as _, Hasher as _};
use std::time::Duration;

use crate::sample::{Sample, Timestamp, Value};

/// What a collection's samples say, times aside, as one number: two
/// collections with equal fingerprints reported the same values. No
/// allocation; a hash over subjects, event types and values.
pub fn fingerprint(samples: &[Sample]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for s in samples {
        s.subject.hash(&mut h);
        s.event_type.hash(&mut h);
        match &s.value {
            Value::Int(v) => (0u8, *v).hash(&mut h),
            Value::Float(v) => (1u8, v.to_bits()).hash(&mut h),
            Value::Text(t) => (2u8, &**t).hash(&mut h),
        }
    }
    h.finish()
}

/// The parameters of `adaptive.backoff`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The interval while values change.
    pub every: Duration,
    /// The longest interval.
    pub max: Duration,
    /// How much the interval grows after each unchanged collection.
    pub factor: f64,
    /// First collection (default: now).
    pub start: Option<Timestamp>,
}

/// The instants of `adaptive.backoff`.
#[derive(Clone, Debug)]
pub struct BackoffInstants {
    params: Backoff,
    /// The last instant handed out.
    last: Option<Timestamp>,
    /// The next one.
    next: Timestamp,
    /// The interval now, µs.
    interval: u64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl BackoffInstants {
    /// Instants from `start` (or `now`) on.
    pub fn new(params: Backoff, now: Timestamp) -> Self {
        Self {
            next: params.start.unwrap_or(now),
            last: None,
            interval: micros(params.every),
            params,
        }
    }

    /// The interval now.
    pub fn interval(&self) -> Duration {
        Duration::from_micros(self.interval)
    }

    /// Whether the collection at the last instant changed anything: the
    /// next instant follows it by the new interval.
    pub fn observe(&mut self, changed: bool) {
        let (every, max) = (micros(self.params.every), micros(self.params.max));
        self.interval = if changed {
            every
        } else {
            ((self.interval as f64 * self.params.factor) as u64).clamp(every, max)
        };
        if let Some(last) = self.last {
            self.next = Timestamp(last.0.saturating_add(self.interval));
        }
    }

    /// The next instant given that it is `now`: one less than an interval
    /// late is collected at once, a later one (a suspend) moves to `now`.
    pub fn next_after(&mut self, now: Timestamp) -> Option<Timestamp> {
        if self.next.0.saturating_add(self.interval) <= now.0 {
            self.next = now;
        }
        self.next()
    }
}

impl Iterator for BackoffInstants {
    type Item = Timestamp;

    fn next(&mut self) -> Option<Timestamp> {
        let t = self.next;
        self.last = Some(t);
        self.next = Timestamp(t.0.saturating_add(self.interval));
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Backoff {
        Backoff {
            every: Duration::from_secs(10),
            max: Duration::from_secs(70),
            factor: 2.0,
            start: None,
        }
    }

    fn secs(t: Timestamp) -> u64 {
        t.0 / 1_000_000
    }

    #[test]
    fn grows_while_unchanged_and_resets_on_change() {
        let mut it = BackoffInstants::new(params(), Timestamp(0));
        let mut got = Vec::new();
        // Values: the first collection is new, then unchanged five times,
        // then a change, then unchanged again.
        for changed in [true, false, false, false, false, false, true, false] {
            got.push(secs(it.next().unwrap()));
            it.observe(changed);
        }
        got.push(secs(it.next().unwrap()));
        // Intervals: 10, 20, 40, 70 (max), 70, 70, 10 (changed), 20.
        assert_eq!(got, [0, 10, 30, 70, 140, 210, 280, 290, 310]);
        assert_eq!(it.interval(), Duration::from_secs(20));
    }

    #[test]
    fn without_observations_it_is_simple() {
        let it = BackoffInstants::new(params(), Timestamp(5_000_000));
        let got: Vec<u64> = it.take(4).map(secs).collect();
        assert_eq!(got, [5, 15, 25, 35]);
    }

    #[test]
    fn fingerprints_ignore_times_only() {
        use crate::sample::{Name, Source};
        let sample = |ts: u64, subject: &str, value: Value| {
            Sample::new(
                Timestamp(ts),
                &Name::from(subject),
                &Name::from("e"),
                value,
                Source::Command,
            )
        };
        let a = [
            sample(1, "node", Value::Int(5)),
            sample(1, "node", Value::Float(0.5)),
        ];
        let b = [
            sample(9, "node", Value::Int(5)),
            sample(9, "node", Value::Float(0.5)),
        ];
        assert_eq!(fingerprint(&a), fingerprint(&b));
        for other in [
            [
                sample(1, "node", Value::Int(6)),
                sample(1, "node", Value::Float(0.5)),
            ],
            [
                sample(1, "disk", Value::Int(5)),
                sample(1, "node", Value::Float(0.5)),
            ],
            [
                sample(1, "node", Value::Float(5.0)),
                sample(1, "node", Value::Float(0.5)),
            ],
            [
                sample(1, "node", Value::Int(5)),
                sample(1, "node", Value::Text("0.5".into())),
            ],
        ] {
            assert_ne!(fingerprint(&a), fingerprint(&other), "{other:?}");
        }
        assert_ne!(fingerprint(&a), fingerprint(&a[..1]));
    }

    #[test]
    fn a_suspend_does_not_burst() {
        let mut it = BackoffInstants::new(params(), Timestamp(0));
        assert_eq!(it.next_after(Timestamp(0)), Some(Timestamp(0)));
        it.observe(false);
        // 20 s interval now; an hour later: at once, then 20 s on.
        assert_eq!(
            it.next_after(Timestamp(3_600_000_000)),
            Some(Timestamp(3_600_000_000))
        );
        it.observe(false);
        assert_eq!(
            it.next_after(Timestamp(3_600_000_001)),
            Some(Timestamp(3_640_000_000))
        );
    }
}
