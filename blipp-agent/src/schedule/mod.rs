//! Collection schedules as pure iterators of instants. The clock is an
//! argument, never read here, and randomness comes from a seedable
//! generator, so every schedule is a plain unit test.
//!
//! | `collection_schedule` | `schedule_params` | module |
//! |---|---|---|
//! | `builtins.simple` | `every`, `start_time`, `end_time` | here |
//! | `builtins.onetime` | `start_time` | here |
//! | `builtins.random` | `low`, `high`, `distribution`, `start_time`, `end_time` | [`random`] |
//! | `builtins.scheduled` | `every`, `scheduled_times` | [`slots`] |
//! | `adaptive.simple_avoid` | `every`, `duration`, `num_to_schedule`, `max_wait` | [`avoid`] |
//! | `adaptive.backoff` | `every`, `max`, `factor`, `start_time` | [`backoff`] |
//! | `builtins.calendar` | `every`, `time_zone`, `days`, `times`, `nest`, `start_time`, `end_time` | [`calendar`] |

pub mod avoid;
pub mod backoff;
pub mod calendar;
pub mod random;
pub mod slots;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::limits::{MAX_EPOCH_SECONDS, MAX_INTERVAL, MIN_INTERVAL};
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
    /// `builtins.random`: random gaps between `low` and `high`.
    Random(random::Random),
    /// `builtins.scheduled`: every `every` inside each time slot.
    Scheduled {
        /// Interval inside a slot.
        every: Duration,
        /// The slots.
        slots: Vec<slots::Slot>,
    },
    /// `adaptive.simple_avoid`: slots planned around other measurements'.
    Avoid(avoid::Avoid),
    /// `adaptive.backoff`: longer intervals while values do not change.
    Backoff(backoff::Backoff),
    /// `builtins.calendar`: calendar days, time windows, nested windows.
    Calendar(Arc<calendar::Calendar>),
}

/// A schedule that cannot be built: the key at fault, its value and what
/// was expected, so that the message points at the field to fix rather
/// than at the whole `schedule_params`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleError {
    /// The key, relative to the probe: `schedule_params/every`,
    /// `collection_schedule`.
    pub key: String,
    /// Its value (null when missing).
    pub value: Value,
    /// What was expected.
    pub expected: String,
}

/// The value of `key` in `params`, or null, for error messages.
fn raw(params: Option<&Value>, key: &str) -> Value {
    params
        .and_then(|p| p.get(key))
        .cloned()
        .unwrap_or(Value::Null)
}

/// An error about `schedule_params/key`.
fn param_error(params: Option<&Value>, key: &str, expected: impl Into<String>) -> ScheduleError {
    ScheduleError {
        key: format!("schedule_params/{key}"),
        value: raw(params, key),
        expected: expected.into(),
    }
}

/// A required interval, seconds, within [`MIN_INTERVAL`]..=[`MAX_INTERVAL`].
fn interval(params: Option<&Value>, key: &str, schedule: &str) -> Result<f64, ScheduleError> {
    seconds(params, key, MAX_INTERVAL)?
        .filter(|s| *s >= MIN_INTERVAL)
        .ok_or_else(|| {
            param_error(
                params,
                key,
                format!(
                    "the {schedule} schedule needs a number of seconds from {MIN_INTERVAL} to {MAX_INTERVAL}"
                ),
            )
        })
}

/// Seconds as a duration (bounded by the checks above).
fn duration(secs: f64) -> Duration {
    Duration::from_secs_f64(secs.min(MAX_EPOCH_SECONDS))
}

/// An optional number of seconds from 0 to `max`.
fn seconds(params: Option<&Value>, key: &str, max: f64) -> Result<Option<f64>, ScheduleError> {
    match params.and_then(|p| p.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(s) if s.is_finite() && (0.0..=max).contains(&s) => Ok(Some(s)),
            _ => Err(param_error(
                params,
                key,
                format!("expected a number of seconds from 0 to {max}"),
            )),
        },
    }
}

fn instant(s: Option<f64>) -> Option<Timestamp> {
    // Within MAX_EPOCH_SECONDS: fits in microseconds.
    s.map(|s| Timestamp((s * 1e6) as u64))
}

impl ScheduleSpec {
    /// Builds a schedule from the configuration keys.
    pub fn from_config(name: &str, params: Option<&Value>) -> Result<Self, ScheduleError> {
        let start = instant(seconds(params, "start_time", MAX_EPOCH_SECONDS)?);
        let end = instant(seconds(params, "end_time", MAX_EPOCH_SECONDS)?);
        match name {
            "builtins.simple" | "simple" => Ok(ScheduleSpec::Simple {
                every: duration(interval(params, "every", "simple")?),
                start,
                end,
            }),
            "builtins.random" | "random" => {
                let low = seconds(params, "low", MAX_INTERVAL)?.unwrap_or(0.0);
                let high = interval(params, "high", "random")?;
                if low > high {
                    return Err(param_error(
                        params,
                        "low",
                        format!("expected at most high ({high})"),
                    ));
                }
                let distribution = match params.and_then(|p| p.get("distribution")) {
                    None | Some(Value::Null) => random::Distribution::Uniform,
                    Some(v) => v
                        .as_str()
                        .and_then(random::Distribution::from_name)
                        .ok_or_else(|| {
                            param_error(
                                params,
                                "distribution",
                                "expected uniform, exponential or poisson",
                            )
                        })?,
                };
                Ok(ScheduleSpec::Random(random::Random {
                    low: duration(low),
                    high: duration(high),
                    distribution,
                    start,
                    end,
                }))
            }
            "builtins.scheduled" | "scheduled" => {
                let every = duration(interval(params, "every", "scheduled")?);
                let slots = slots::parse_slots(&raw(params, "scheduled_times")).map_err(
                    |(value, expected)| ScheduleError {
                        key: "schedule_params/scheduled_times".to_owned(),
                        value,
                        expected,
                    },
                )?;
                if slots.is_empty() {
                    return Err(param_error(
                        params,
                        "scheduled_times",
                        "expected at least one {\"start\", \"end\"} slot",
                    ));
                }
                Ok(ScheduleSpec::Scheduled { every, slots })
            }
            "adaptive.simple_avoid" | "simple_avoid" => {
                let every = interval(params, "every", "simple_avoid")?;
                let length = seconds(params, "duration", MAX_INTERVAL)?
                    .filter(|d| *d > 0.0)
                    .ok_or_else(|| {
                        param_error(
                            params,
                            "duration",
                            "the simple_avoid schedule needs a positive number of seconds",
                        )
                    })?;
                if length > every {
                    return Err(param_error(
                        params,
                        "duration",
                        format!(
                            "expected at most every ({every}): a measurement's runs would overlap each other"
                        ),
                    ));
                }
                let count = match params.and_then(|p| p.get("num_to_schedule")) {
                    None | Some(Value::Null) => 10,
                    Some(v) => v
                        .as_u64()
                        .filter(|n| (1..=10_000).contains(n))
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| {
                            param_error(
                                params,
                                "num_to_schedule",
                                "expected an integer from 1 to 10000",
                            )
                        })?,
                };
                Ok(ScheduleSpec::Avoid(avoid::Avoid {
                    every: duration(every),
                    duration: duration(length),
                    num_to_schedule: count,
                    max_wait: duration(seconds(params, "max_wait", MAX_INTERVAL)?.unwrap_or(3.0)),
                }))
            }
            "builtins.onetime" | "onetime" => Ok(ScheduleSpec::Onetime { start }),
            "builtins.calendar" | "calendar" => {
                let every = interval(params, "every", "calendar")?;
                Ok(ScheduleSpec::Calendar(Arc::new(
                    calendar::Calendar::from_params(params, every, start, end)?,
                )))
            }
            "adaptive.backoff" | "backoff" => {
                let every = interval(params, "every", "backoff")?;
                let max = interval(params, "max", "backoff")?;
                if max < every {
                    return Err(param_error(
                        params,
                        "max",
                        format!("expected at least every ({every})"),
                    ));
                }
                let factor = match params.and_then(|p| p.get("factor")) {
                    None | Some(Value::Null) => 2.0,
                    Some(v) => v
                        .as_f64()
                        .filter(|f| *f > 1.0 && *f <= 16.0)
                        .ok_or_else(|| {
                            param_error(params, "factor", "expected a number above 1, at most 16")
                        })?,
                };
                Ok(ScheduleSpec::Backoff(backoff::Backoff {
                    every: duration(every),
                    max: duration(max),
                    factor,
                    start,
                }))
            }
            other => Err(ScheduleError {
                key: "collection_schedule".to_owned(),
                value: Value::String(other.to_owned()),
                expected: "a known collection_schedule".to_owned(),
            }),
        }
    }

    /// The collection instants, starting from `now` where the schedule has
    /// no explicit start; random draws are seeded from the system, and
    /// `simple_avoid` has no other measurements to avoid.
    pub fn instants(&self, now: Timestamp) -> Instants {
        self.instants_with(now, fastrand::Rng::new(), Box::new(avoid::NoReservations))
    }

    /// [`ScheduleSpec::instants`] with the random generator and, for
    /// `simple_avoid`, the other measurements' reservations given.
    pub fn instants_with(
        &self,
        now: Timestamp,
        rng: fastrand::Rng,
        reservations: Box<dyn avoid::Reservations>,
    ) -> Instants {
        match self {
            ScheduleSpec::Simple { every, start, end } => Instants::Simple {
                next: start.unwrap_or(now),
                every: u64::try_from(every.as_micros()).unwrap_or(u64::MAX).max(1),
                end: *end,
            },
            ScheduleSpec::Onetime { start } => Instants::Once(Some(start.unwrap_or(now))),
            ScheduleSpec::Random(params) => {
                Instants::Random(random::RandomInstants::new(*params, now, rng))
            }
            ScheduleSpec::Scheduled { every, slots } => {
                Instants::Scheduled(slots::SlotInstants::new(slots.clone(), *every))
            }
            ScheduleSpec::Avoid(params) => {
                Instants::Avoid(avoid::AvoidInstants::new(*params, now, rng, reservations))
            }
            ScheduleSpec::Backoff(params) => {
                Instants::Backoff(backoff::BackoffInstants::new(*params, now))
            }
            ScheduleSpec::Calendar(c) => {
                Instants::Calendar(calendar::CalendarInstants::new(Arc::clone(c), now))
            }
        }
    }

    /// The nominal interval, for rate bounds and UNIS; `None` for one-shot
    /// schedules.
    pub fn every(&self) -> Option<Duration> {
        match self {
            ScheduleSpec::Simple { every, .. }
            | ScheduleSpec::Scheduled { every, .. }
            | ScheduleSpec::Avoid(avoid::Avoid { every, .. })
            | ScheduleSpec::Backoff(backoff::Backoff { every, .. }) => Some(*every),
            ScheduleSpec::Random(r) => Some((r.low + r.high) / 2),
            ScheduleSpec::Calendar(c) => Some(Duration::from_micros(c.every())),
            ScheduleSpec::Onetime { .. } => None,
        }
    }
}

/// Iterator over a schedule's instants.
#[derive(Debug)]
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
    /// Random gaps.
    Random(random::RandomInstants),
    /// Inside time slots.
    Scheduled(slots::SlotInstants),
    /// Planned around other measurements.
    Avoid(avoid::AvoidInstants),
    /// Slower while nothing changes.
    Backoff(backoff::BackoffInstants),
    /// Calendar days and nested windows.
    Calendar(calendar::CalendarInstants),
}

impl Instants {
    /// The next instant to collect at, given that it is `now`: the latest
    /// instant that is less than one interval late (collected at once), or
    /// the next future one. A collector that fell behind by whole intervals
    /// (suspend, overload) skips those instead of bursting, and one that is
    /// merely a little late (a slow collection, the clock read twice) does
    /// not lose an interval.
    ///
    /// Random, slotted and planned schedules apply the same idea their own
    /// way (see [`random::RandomInstants::next_after`],
    /// [`slots::SlotInstants::next_after`],
    /// [`avoid::AvoidInstants::next_after`]).
    pub fn next_after(&mut self, now: Timestamp) -> Option<Timestamp> {
        match self {
            Instants::Simple { next, every, .. } => {
                if next.0.saturating_add(*every) <= now.0 {
                    let missed = (now.0 - next.0) / *every;
                    next.0 = next.0.saturating_add(missed.saturating_mul(*every));
                }
                self.next()
            }
            Instants::Once(_) => self.next(),
            Instants::Random(r) => r.next_after(now),
            Instants::Scheduled(s) => s.next_after(now),
            Instants::Avoid(a) => a.next_after(now),
            Instants::Backoff(b) => b.next_after(now),
            Instants::Calendar(c) => c.next_after(now),
        }
    }

    /// Whether the instant `at`, just reached, may still be collected at:
    /// only `simple_avoid` may find that another measurement holds it now
    /// ([`avoid::AvoidInstants::may_run`]).
    pub fn may_run(&mut self, at: Timestamp) -> bool {
        match self {
            Instants::Avoid(a) => a.may_run(at),
            _ => true,
        }
    }

    /// Whether the schedule wants to hear, after each collection, whether
    /// its samples changed ([`Instants::observe`]).
    pub fn observes(&self) -> bool {
        matches!(self, Instants::Backoff(_))
    }

    /// Tells the schedule whether the collection at its last instant
    /// reported other values than the one before (see
    /// [`backoff::fingerprint`]); schedules that do not adapt ignore it.
    pub fn observe(&mut self, changed: bool) {
        if let Instants::Backoff(b) = self {
            b.observe(changed);
        }
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
            Instants::Random(r) => r.next(),
            Instants::Scheduled(s) => s.next(),
            Instants::Avoid(a) => a.next(),
            Instants::Backoff(b) => b.next(),
            Instants::Calendar(c) => c.next(),
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
    fn new_schedules_from_config() {
        let random = ScheduleSpec::from_config(
            "builtins.random",
            Some(&json!({"low": 10, "high": 60, "distribution": "poisson"})),
        )
        .unwrap();
        assert_eq!(random.every(), Some(Duration::from_secs(35)));
        let t: Vec<u64> = random
            .instants_with(
                Timestamp(0),
                fastrand::Rng::with_seed(9),
                Box::new(avoid::NoReservations),
            )
            .take(100)
            .map(|t| t.0)
            .collect();
        assert!(
            t.windows(2)
                .all(|w| (10_000_000..=60_000_000).contains(&(w[1] - w[0])))
        );
        let scheduled = ScheduleSpec::from_config(
            "builtins.scheduled",
            Some(&json!({"every": 2, "scheduled_times": [
                {"start": "1970-01-01T00:00:10Z", "end": "1970-01-01T00:00:15Z"}]})),
        )
        .unwrap();
        let got: Vec<u64> = scheduled
            .instants(Timestamp(0))
            .map(|t| t.0 / 1_000_000)
            .collect();
        assert_eq!(got, [10, 12, 14]);
        let avoid = ScheduleSpec::from_config(
            "adaptive.simple_avoid",
            Some(&json!({"every": 60, "duration": 5, "num_to_schedule": 6, "max_wait": 30})),
        )
        .unwrap();
        assert_eq!(
            avoid,
            ScheduleSpec::Avoid(avoid::Avoid {
                every: Duration::from_secs(60),
                duration: Duration::from_secs(5),
                num_to_schedule: 6,
                max_wait: Duration::from_secs(30),
            })
        );
        let backoff =
            ScheduleSpec::from_config("adaptive.backoff", Some(&json!({"every": 10, "max": 70})))
                .unwrap();
        let mut it = backoff.instants(Timestamp(0));
        assert!(it.observes());
        let mut got = Vec::new();
        for changed in [false, false, true] {
            got.push(it.next_after(Timestamp(0)).unwrap().0 / 1_000_000);
            it.observe(changed);
        }
        assert_eq!(got, [0, 20, 60], "10 s doubled twice, then back to 10");
        assert_eq!(it.next().map(|t| t.0 / 1_000_000), Some(70));
        for (name, params) in [
            ("builtins.random", json!({"low": 10})),
            ("builtins.random", json!({"low": 70, "high": 60})),
            (
                "builtins.random",
                json!({"high": 60, "distribution": "normal"}),
            ),
            ("builtins.scheduled", json!({"every": 1})),
            (
                "builtins.scheduled",
                json!({"every": 1, "scheduled_times": []}),
            ),
            ("builtins.scheduled", json!({"scheduled_times": []})),
            ("adaptive.simple_avoid", json!({"every": 5, "duration": 10})),
            (
                "adaptive.simple_avoid",
                json!({"every": 5, "duration": 1, "num_to_schedule": 0}),
            ),
            ("adaptive.polite_avoid", json!({"every": 5, "duration": 1})),
            ("adaptive.backoff", json!({"every": 5})),
            ("adaptive.backoff", json!({"every": 5, "max": 1})),
            (
                "adaptive.backoff",
                json!({"every": 5, "max": 60, "factor": 1}),
            ),
        ] {
            assert!(
                ScheduleSpec::from_config(name, Some(&params)).is_err(),
                "{name} {params}"
            );
        }
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

    /// Issue 16: no interval below the floor or above the ceiling, no
    /// start in the far future; the error names the field itself.
    #[test]
    fn intervals_and_times_are_bounded_and_errors_name_the_field() {
        for (name, params, key) in [
            ("simple", json!({"every": 1e-9}), "schedule_params/every"),
            ("simple", json!({"every": 0.09}), "schedule_params/every"),
            ("simple", json!({"every": 1e308}), "schedule_params/every"),
            (
                "simple",
                json!({"every": 1, "start_time": 1e300}),
                "schedule_params/start_time",
            ),
            (
                "simple",
                json!({"every": 1, "end_time": 1e11}),
                "schedule_params/end_time",
            ),
            ("random", json!({"high": 0.01}), "schedule_params/high"),
            (
                "random",
                json!({"low": 10, "high": 5}),
                "schedule_params/low",
            ),
            (
                "backoff",
                json!({"every": 1, "max": 1e9}),
                "schedule_params/max",
            ),
            (
                "simple_avoid",
                json!({"every": 5, "duration": 1, "max_wait": 1e12}),
                "schedule_params/max_wait",
            ),
            ("nope", json!({}), "collection_schedule"),
        ] {
            let e = ScheduleSpec::from_config(name, Some(&params)).unwrap_err();
            assert_eq!(e.key, key, "{name} {params}: {e:?}");
            assert!(
                !e.expected.starts_with(key.rsplit('/').next().unwrap()),
                "{e:?}"
            );
        }
        let e =
            ScheduleSpec::from_config("random", Some(&json!({"low": 10, "high": 5}))).unwrap_err();
        assert_eq!(e.value, json!(10));
        assert_eq!(e.expected, "expected at most high (5)");
        for every in [MIN_INTERVAL, MAX_INTERVAL] {
            assert!(ScheduleSpec::from_config("simple", Some(&json!({"every": every}))).is_ok());
        }
    }
}
