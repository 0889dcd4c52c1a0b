//! Collection schedules as pure iterators of instants. The clock is an
//! argument, never read here, so every schedule is a plain unit test.

use std::time::Duration;

use serde_json::Value;

use crate::sample::Timestamp;

/// A configured schedule (`collection_schedule` + `schedule_params`).
#[derive(Clone, Debug, PartialEq)]
pub enum ScheduleSpec {
    /// `builtins.simple`: every `every`, from `start` (default: now) until
    /// `end` (default: forever).
    Simple {
        /// Interval.
        every: Duration,
        /// First collection.
        start: Option<Timestamp>,
        /// No collection after this.
        end: Option<Timestamp>,
    },
    /// `builtins.onetime`: once, at `start` (default: now).
    Onetime {
        /// When.
        start: Option<Timestamp>,
    },
}

fn seconds(params: Option<&Value>, key: &str) -> Result<Option<f64>, (Value, String)> {
    match params.and_then(|p| p.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(s)),
            _ => Err((
                v.clone(),
                format!("{key}: expected a non-negative number of seconds"),
            )),
        },
    }
}

fn instant(s: Option<f64>) -> Option<Timestamp> {
    // Saturating float-to-int conversion: absurd times clamp, never wrap.
    s.map(|s| Timestamp((s * 1e6) as u64))
}

impl ScheduleSpec {
    /// Builds a schedule from the configuration keys. The error is the bad
    /// value and what was expected.
    pub fn from_config(name: &str, params: Option<&Value>) -> Result<Self, (Value, String)> {
        let start = instant(seconds(params, "start_time")?);
        match name.strip_prefix("builtins.").unwrap_or(name) {
            "simple" => {
                let every = seconds(params, "every")?
                    .filter(|s| *s > 0.0)
                    .ok_or_else(|| {
                        (
                            params
                                .and_then(|p| p.get("every"))
                                .cloned()
                                .unwrap_or(Value::Null),
                            "every: the simple schedule needs a positive number of seconds"
                                .to_owned(),
                        )
                    })?;
                Ok(ScheduleSpec::Simple {
                    every: Duration::from_secs_f64(every),
                    start,
                    end: instant(seconds(params, "end_time")?),
                })
            }
            "onetime" => Ok(ScheduleSpec::Onetime { start }),
            other => Err((
                Value::String(other.to_owned()),
                "a known collection_schedule".to_owned(),
            )),
        }
    }

    /// The collection instants, starting from `now` where the schedule has
    /// no explicit start.
    pub fn instants(&self, now: Timestamp) -> Instants {
        match *self {
            ScheduleSpec::Simple { every, start, end } => Instants::Simple {
                next: start.unwrap_or(now),
                every: u64::try_from(every.as_micros()).unwrap_or(u64::MAX).max(1),
                end,
            },
            ScheduleSpec::Onetime { start } => Instants::Once(Some(start.unwrap_or(now))),
        }
    }

    /// The nominal interval, for rate bounds and UNIS; `None` for one-shot
    /// schedules.
    pub fn every(&self) -> Option<Duration> {
        match self {
            ScheduleSpec::Simple { every, .. } => Some(*every),
            ScheduleSpec::Onetime { .. } => None,
        }
    }
}

/// Iterator over a schedule's instants.
#[derive(Clone, Debug)]
pub enum Instants {
    /// Fixed interval.
    Simple {
        /// The next instant.
        next: Timestamp,
        /// Interval in µs.
        every: u64,
        /// Last allowed instant.
        end: Option<Timestamp>,
    },
    /// A single instant, until taken.
    Once(Option<Timestamp>),
}

impl Instants {
    /// The next instant to collect at, given that it is `now`: the latest
    /// instant that is less than one interval late (collected at once), or
    /// the next future one. A collector that fell behind by whole intervals
    /// (suspend, overload) skips those instead of bursting, and one that is
    /// merely a little late (a slow collection, the clock read twice) does
    /// not lose an interval.
    pub fn next_after(&mut self, now: Timestamp) -> Option<Timestamp> {
        if let Instants::Simple { next, every, .. } = self
            && next.0.saturating_add(*every) <= now.0
        {
            let missed = (now.0 - next.0) / *every;
            next.0 = next.0.saturating_add(missed.saturating_mul(*every));
        }
        self.next()
    }
}

impl Iterator for Instants {
    type Item = Timestamp;

    fn next(&mut self) -> Option<Timestamp> {
        match self {
            Instants::Simple { next, every, end } => {
                let t = *next;
                if end.is_some_and(|end| t > end) {
                    return None;
                }
                next.0 = next.0.saturating_add(*every);
                Some(t)
            }
            Instants::Once(t) => t.take(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simple_every_until_end() {
        let s = ScheduleSpec::from_config(
            "builtins.simple",
            Some(&json!({"every": 2, "end_time": 10})),
        )
        .unwrap();
        let got: Vec<u64> = s
            .instants(Timestamp(4_000_000))
            .map(|t| t.0 / 1_000_000)
            .collect();
        assert_eq!(got, [4, 6, 8, 10]);
    }

    #[test]
    fn skips_missed_instants() {
        let s = ScheduleSpec::from_config("simple", Some(&json!({"every": 1, "start_time": 100})))
            .unwrap();
        let mut it = s.instants(Timestamp(0));
        assert_eq!(it.next(), Some(Timestamp(100_000_000)));
        // 5.5 intervals late: 101..=104 are skipped, 105 is taken at once.
        assert_eq!(
            it.next_after(Timestamp(105_500_000)),
            Some(Timestamp(105_000_000))
        );
        assert_eq!(it.next(), Some(Timestamp(106_000_000)));
        // A little late: that instant is still taken.
        assert_eq!(
            it.next_after(Timestamp(107_000_001)),
            Some(Timestamp(107_000_000))
        );
        // Early: the instant is in the future and waited for.
        assert_eq!(
            it.next_after(Timestamp(107_500_000)),
            Some(Timestamp(108_000_000))
        );
    }

    #[test]
    fn onetime_and_errors() {
        let s = ScheduleSpec::from_config("builtins.onetime", None).unwrap();
        assert_eq!(s.instants(Timestamp(7)).collect::<Vec<_>>(), [Timestamp(7)]);
        assert!(ScheduleSpec::from_config("simple", Some(&json!({"every": 0}))).is_err());
        assert!(ScheduleSpec::from_config("simple", Some(&json!({"every": "x"}))).is_err());
        assert!(ScheduleSpec::from_config("simple", None).is_err());
        assert!(ScheduleSpec::from_config("builtins.nope", None).is_err());
    }
}
