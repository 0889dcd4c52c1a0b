//! What the running agent can tell about itself (`blippcmd status`,
//! `blippcmd tail`): per probe, its collections, errors and samples, and
//! its latest samples in a small ring.
//!
//! The arbiter updates a probe's record once per collection, under one
//! uncontended lock: a few counters and at most [`TAIL_CAPACITY`] sample
//! clones (reference counts, no allocation once the ring is full), so the
//! record costs the same on every tick whatever the probe reports.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Mode;
use crate::config::policy::Refusal;
use crate::control::top::quantities;
use crate::sample::{Name, Sample, Source, Timestamp, Value as SampleValue};

/// Samples kept per probe for `tail`.
pub const TAIL_CAPACITY: usize = 128;

/// Points kept per series for `blippcmd top`: a minute at one collection
/// a second.
pub const HISTORY_POINTS: usize = 64;

/// Series kept per probe for `blippcmd top` (e.g. 8 disks of 4
/// quantities); later subjects are not kept.
pub const HISTORY_SERIES: usize = 32;

/// The last entries of something: a ring of fixed capacity that
/// overwrites its oldest entries.
#[derive(Debug)]
pub struct Ring<T> {
    buf: Vec<T>,
    /// Where the next sample goes once the ring is full.
    next: usize,
    capacity: usize,
}

impl<T: Clone> Ring<T> {
    /// An empty ring of `capacity` samples (at least 1), allocated once.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            buf: Vec::with_capacity(capacity),
            next: 0,
            capacity,
        }
    }

    /// Keeps the newest of `items`, dropping the oldest kept ones.
    pub fn extend(&mut self, items: &[T]) {
        let newest = &items[items.len().saturating_sub(self.capacity)..];
        for s in newest {
            self.push(s.clone());
        }
    }

    /// Keeps `item`, dropping the oldest kept one when full.
    pub fn push(&mut self, item: T) {
        if self.buf.len() < self.capacity {
            self.buf.push(item);
        } else {
            self.buf[self.next] = item;
            self.next = (self.next + 1) % self.capacity;
        }
    }

    /// The newest `n` entries, oldest first.
    pub fn last(&self, n: usize) -> Vec<T> {
        let len = self.buf.len();
        let n = n.min(len);
        // In order, the ring is buf[next..] then buf[..next] (next is 0
        // until it is full).
        (len - n..len)
            .map(|i| self.buf[(self.next + i) % len].clone())
            .collect()
    }
}

/// A probe's life so far.
#[derive(Debug)]
struct Record {
    started: Timestamp,
    collections: u64,
    errors: u64,
    samples: u64,
    last_at: Option<Timestamp>,
    last_took: Option<Duration>,
    last_error: Option<(Timestamp, String)>,
    recent: Ring<Sample>,
    history: History,
}

/// One series that `blippcmd top` draws, while blippd keeps it.
#[derive(Debug)]
struct Kept {
    subject: Name,
    event_type: Name,
    source: Source,
    points: Ring<Point>,
}

/// The recent values of the probe's series that
/// [`quantities`](crate::control::top::quantities) lists: at most
/// [`HISTORY_SERIES`] of [`HISTORY_POINTS`] points each, each ring
/// allocated once when its series first shows up.
#[derive(Debug, Default)]
struct History(Vec<Kept>);

impl History {
    fn record(&mut self, samples: &[Sample]) {
        for s in samples {
            let value = match s.value {
                SampleValue::Int(i) => i as f64,
                SampleValue::Float(f) => f,
                SampleValue::Text(_) => continue,
            };
            if quantities::watched(&s.event_type, &s.subject).is_none() {
                continue;
            }
            // Names are shared by reference: a pointer compare finds the
            // series without comparing text.
            let found = self.0.iter().position(|k| {
                Arc::ptr_eq(&k.event_type, &s.event_type) && Arc::ptr_eq(&k.subject, &s.subject)
                    || (*k.event_type == *s.event_type && *k.subject == *s.subject)
            });
            let i = match found {
                Some(i) => i,
                None if self.0.len() < HISTORY_SERIES => {
                    self.0.push(Kept {
                        subject: Arc::clone(&s.subject),
                        event_type: Arc::clone(&s.event_type),
                        source: s.source,
                        points: Ring::new(HISTORY_POINTS),
                    });
                    self.0.len() - 1
                }
                None => continue,
            };
            let kept = &mut self.0[i];
            kept.source = s.source;
            kept.points.push(Point {
                ts: s.ts.0,
                value,
                reset: s.reset,
            });
        }
    }

    fn series(&self, probe: &str) -> Vec<Series> {
        self.0
            .iter()
            .map(|k| Series {
                probe: probe.to_owned(),
                subject: k.subject.to_string(),
                event_type: k.event_type.to_string(),
                source: k.source,
                points: k.points.last(HISTORY_POINTS),
            })
            .collect()
    }
}

/// One value of a series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// When, µs since the epoch.
    pub ts: u64,
    /// The value.
    pub value: f64,
    /// The counter restarted here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
}

/// A series' recent points, as `blippcmd top` gets them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The probe that reports it.
    pub probe: String,
    /// The subject.
    pub subject: String,
    /// The event type.
    #[serde(rename = "eventType")]
    pub event_type: String,
    /// Where its latest value came from.
    pub source: Source,
    /// Oldest first.
    pub points: Vec<Point>,
}

/// One running probe's record, shared by its task (which writes it) and
/// the control plane (which reads it). A restarted probe gets a new one.
#[derive(Debug)]
pub struct ProbeHealth(Mutex<Record>);

impl ProbeHealth {
    /// A record for a probe started now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(Record {
            started: Timestamp::now(),
            collections: 0,
            errors: 0,
            samples: 0,
            last_at: None,
            last_took: None,
            last_error: None,
            recent: Ring::new(TAIL_CAPACITY),
            history: History::default(),
        })))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Record) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Records one collection at `at` that took `took` and produced
    /// `samples`; `error` when it failed (its message is kept).
    pub fn collected(
        &self,
        at: Timestamp,
        took: Duration,
        samples: &[Sample],
        error: Option<&dyn std::error::Error>,
    ) {
        // Formatting the error allocates; only failures pay for it, and
        // outside the lock.
        let error = error.map(|e| (at, e.to_string()));
        self.with(|r| {
            r.collections += 1;
            r.samples += samples.len() as u64;
            r.last_at = Some(at);
            r.last_took = Some(took);
            if error.is_some() {
                r.errors += 1;
                r.last_error = error;
            }
            r.recent.extend(samples);
            r.history.record(samples);
        });
    }

    /// The recent points of the probe's series that `top` draws.
    pub fn series(&self, probe: &str) -> Vec<Series> {
        self.with(|r| r.history.series(probe))
    }

    /// The newest `n` samples, oldest first.
    pub fn tail(&self, n: usize) -> Vec<Sample> {
        self.with(|r| r.recent.last(n))
    }

    /// Fills the run-time fields of `report`.
    pub fn fill(&self, report: &mut ProbeReport) {
        self.with(|r| {
            report.started = Some(r.started.0);
            report.collections = r.collections;
            report.errors = r.errors;
            report.samples = r.samples;
            report.last_collection = r.last_at.map(|t| t.0);
            report.last_duration_ms = r.last_took.map(|d| d.as_secs_f64() * 1e3);
            report.last_error = r.last_error.as_ref().map(|(_, e)| e.clone());
            report.last_error_at = r.last_error.as_ref().map(|(t, _)| t.0);
        });
    }
}

/// What a configured probe is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeState {
    /// Collecting on its schedule.
    Running,
    /// Its schedule has ended (`builtins.onetime`, an `end_time`).
    Finished,
    /// Its status (or the service's) is OFF.
    Off,
    /// Its configuration is ON but it could not be built (see
    /// `last_error`): its configuration is at fault, and only a new one
    /// (an edit, a reload, UNIS) builds it again.
    Failed,
    /// It could not be built because something it needs from the host
    /// failed (see `last_error`); it is tried again at `next_attempt`.
    Retrying,
}

/// One probe, as `blippcmd status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Its name.
    pub name: String,
    /// Its module.
    pub module: String,
    /// What it is doing.
    pub state: ProbeState,
    /// The configured mode.
    pub mode: Mode,
    /// Where its numbers come from, while it runs.
    pub source: Option<Source>,
    /// `collection_schedule` and `schedule_params`, as configured.
    pub schedule: Value,
    /// When it was (re)started, µs since the epoch.
    pub started: Option<u64>,
    /// Collections since it started.
    pub collections: u64,
    /// Failed collections since it started.
    pub errors: u64,
    /// Samples it produced since it started.
    pub samples: u64,
    /// When its last collection was, µs since the epoch.
    pub last_collection: Option<u64>,
    /// How long its last collection took, ms.
    pub last_duration_ms: Option<f64>,
    /// The last failure: of a collection, or why it could not be built.
    pub last_error: Option<String>,
    /// When that failure happened, µs since the epoch.
    pub last_error_at: Option<u64>,
    /// Failed attempts to build it, while it is [`ProbeState::Retrying`].
    #[serde(default)]
    pub attempts: u32,
    /// When it is tried again, µs since the epoch.
    #[serde(default)]
    pub next_attempt: Option<u64>,
}

impl ProbeReport {
    /// A report with nothing measured yet.
    pub fn new(name: &str, module: &str, state: ProbeState, mode: Mode, schedule: Value) -> Self {
        Self {
            name: name.to_owned(),
            module: module.to_owned(),
            state,
            mode,
            source: None,
            schedule,
            started: None,
            collections: 0,
            errors: 0,
            samples: 0,
            last_collection: None,
            last_duration_ms: None,
            last_error: None,
            last_error_at: None,
            attempts: 0,
            next_attempt: None,
        }
    }
}

/// The UNIS/MS sink's state, as `blippcmd status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SinkReport {
    /// The UNIS URL.
    pub unis_url: String,
    /// Registered in UNIS (node, service, measurements).
    pub registered: bool,
    /// When UNIS last answered, µs since the epoch.
    pub unis_ok_at: Option<u64>,
    /// When data was last delivered to the MS, µs since the epoch.
    pub delivered_at: Option<u64>,
    /// The last failure talking to UNIS or the MS (cleared by a success).
    pub last_error: Option<String>,
    /// Samples waiting in memory.
    pub pending_samples: u64,
    /// Samples waiting in the disk spool.
    pub spooled_samples: u64,
}

/// The whole agent, as `blippcmd status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// blippd's version.
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// Seconds since it started.
    pub uptime_s: f64,
    /// The service's status, `ON` or `OFF`.
    pub service_status: String,
    /// Edits made through the control socket and still in effect.
    pub edits: usize,
    /// Every configured probe, in name order.
    pub probes: Vec<ProbeReport>,
    /// The UNIS/MS sink, when one runs.
    pub sink: Option<SinkReport>,
    /// Parts of the configuration from UNIS that the local trust policy
    /// refused.
    #[serde(default)]
    pub refused: Vec<Refusal>,
    /// The remote-write destinations.
    #[serde(default)]
    pub remote_write: Vec<crate::report::remote_write::sink::RemoteWriteReport>,
}

/// What `blippcmd top` draws: the status and the recent points of the
/// main quantities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopReport {
    /// As `blippcmd status`.
    pub status: StatusReport,
    /// Every kept series of every running probe.
    pub series: Vec<Series>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Name, Value as V};

    fn sample(i: u64) -> Sample {
        Sample::new(
            Timestamp(i),
            &Name::from("node"),
            &Name::from("e"),
            V::Int(i),
            Source::Proc,
        )
    }

    fn ts(v: &[Sample]) -> Vec<u64> {
        v.iter().map(|s| s.ts.0).collect()
    }

    #[test]
    fn ring_keeps_the_newest_in_order() {
        let mut r = Ring::new(4);
        assert!(r.last(3).is_empty());
        r.extend(&[sample(1), sample(2)]);
        assert_eq!(ts(&r.last(10)), [1, 2]);
        r.extend(&[sample(3), sample(4), sample(5)]);
        assert_eq!(ts(&r.last(10)), [2, 3, 4, 5]);
        assert_eq!(ts(&r.last(2)), [4, 5]);
        let many: Vec<Sample> = (6..=15).map(sample).collect();
        r.extend(&many);
        assert_eq!(ts(&r.last(4)), [12, 13, 14, 15]);
        r.extend(&[sample(16)]);
        assert_eq!(ts(&r.last(4)), [13, 14, 15, 16]);
        assert_eq!(r.buf.capacity(), 4, "never grows");
    }

    /// `blippcmd status --json` writes the mode and source by the names
    /// the configuration and the samples use, as when they were strings.
    #[test]
    fn a_report_writes_mode_and_source_by_name() {
        let mut r = ProbeReport::new("ping", "cmd", ProbeState::Running, Mode::Ebpf, Value::Null);
        r.source = Some(Source::Command);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            (&json["mode"], &json["source"]),
            (&"ebpf".into(), &"command".into())
        );
        assert_eq!(serde_json::from_value::<ProbeReport>(json).unwrap(), r);
    }

    #[test]
    fn health_counts_collections_errors_and_samples() {
        let h = ProbeHealth::new();
        h.collected(Timestamp(10), Duration::from_millis(2), &[sample(10)], None);
        let err = std::io::Error::other("no such file");
        h.collected(Timestamp(20), Duration::from_millis(4), &[], Some(&err));
        let mut r = ProbeReport::new("cpu", "cpu", ProbeState::Running, Mode::Auto, Value::Null);
        h.fill(&mut r);
        assert_eq!((r.collections, r.errors, r.samples), (2, 1, 1));
        assert_eq!(r.last_collection, Some(20));
        assert_eq!(r.last_duration_ms, Some(4.0));
        assert_eq!(r.last_error.as_deref(), Some("no such file"));
        assert_eq!(r.last_error_at, Some(20));
        assert_eq!(ts(&h.tail(5)), [10]);
    }

    #[test]
    fn history_keeps_main_quantities_bounded() {
        let h = ProbeHealth::new();
        let user = Name::from("ps:tools:blipp:linux:cpu:utilization:user");
        let nice = Name::from("ps:tools:blipp:linux:cpu:utilization:nice");
        let node = Name::from("node");
        let cpu0 = Name::from("cpu:0");
        for i in 0..100u64 {
            let at = Timestamp(i * 1_000_000);
            let v = V::Float(i as f64 / 100.0);
            let samples = [
                Sample::new(at, &node, &user, v.clone(), Source::Proc),
                Sample::new(at, &cpu0, &user, v.clone(), Source::Proc),
                Sample::new(at, &node, &nice, v, Source::Proc),
            ];
            h.collected(at, Duration::ZERO, &samples, None);
        }
        let series = h.series("cpu");
        assert_eq!(series.len(), 1, "{series:?}");
        let points = &series[0].points;
        assert_eq!(points.len(), HISTORY_POINTS);
        assert_eq!(points.last().unwrap().ts, 99_000_000);
        assert_eq!(points[0].ts, (100 - HISTORY_POINTS as u64) * 1_000_000);
        let disk = Name::from("ps:tools:blipp:linux:disk:utilization:busy");
        let many: Vec<Sample> = (0..HISTORY_SERIES + 5)
            .map(|i| {
                let subject = Name::from(format!("disk:d{i}"));
                Sample::new(Timestamp(1), &subject, &disk, V::Float(0.5), Source::Proc)
            })
            .collect();
        let d = ProbeHealth::new();
        d.collected(Timestamp(1), Duration::ZERO, &many, None);
        assert_eq!(d.series("disk").len(), HISTORY_SERIES);
    }
}
