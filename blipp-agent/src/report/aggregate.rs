//! Summaries of a probe's samples over windows, sent instead of (or
//! besides) the raw samples: the "flexible reporting aggregation" the
//! original's notes asked for ("right now it's just send to MS after you've
//! called get_data X times").
//!
//! A window is a number of seconds (aligned to multiples of it since the
//! epoch, so that a fleet's windows line up) or a number of collections.
//! Each series (subject and event type) whose event type matches a rule
//! gets the rule's summaries; each summary is its own series, the event
//! type with `:<stat>` appended (`...:cpu:utilization:user:p99`), carrying
//! the window's end as its `ts` (for a time window its aligned end, for a
//! collection window its last collection's time; a window cut short by
//! shutdown ends at its last sample). A series with no sample in a window
//! has no summary for it: no zeros.
//!
//! Work per sample is O(1) (a hash lookup, a few additions, a sketch
//! bucket for quantiles), memory per series bounded (the sketch's buckets,
//! [`super::sketch::MAX_BUCKETS`] at most), and nothing is allocated per
//! sample once a series exists: the per-series buffers keep their memory
//! from one window to the next.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::sketch::Sketch;
use crate::counter::{self, Width};
use crate::sample::{Name, Sample, Source, Timestamp, Value};

/// How long a window is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// Seconds, in µs; windows end at multiples of it since the epoch.
    Time(u64),
    /// Collections.
    Collections(u32),
}

/// One summary of a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stat {
    /// Arithmetic mean.
    Mean,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Last value.
    Last,
    /// Sum of the values.
    Sum,
    /// Number of values.
    Count,
    /// Population standard deviation.
    Stddev,
    /// A quantile, in thousandths (p99 is 990, p99.9 is 999).
    Quantile(u16),
    /// A cumulative counter's increase per second over the window.
    Rate,
    /// A cumulative counter's increase over the window.
    Delta,
}

impl Stat {
    fn parse(name: &str) -> Option<Stat> {
        Some(match name {
            "mean" => Stat::Mean,
            "min" => Stat::Min,
            "max" => Stat::Max,
            "last" => Stat::Last,
            "sum" => Stat::Sum,
            "count" => Stat::Count,
            "stddev" => Stat::Stddev,
            "rate" => Stat::Rate,
            "delta" => Stat::Delta,
            p => {
                let digits = p.strip_prefix('p')?;
                let q: f64 = digits.parse().ok()?;
                if !(0.0..=100.0).contains(&q) || digits.starts_with('+') {
                    return None;
                }
                Stat::Quantile((q * 10.0).round() as u16)
            }
        })
    }

    /// The suffix of its series' event type.
    fn suffix(self) -> String {
        match self {
            Stat::Mean => "mean".into(),
            Stat::Min => "min".into(),
            Stat::Max => "max".into(),
            Stat::Last => "last".into(),
            Stat::Sum => "sum".into(),
            Stat::Count => "count".into(),
            Stat::Stddev => "stddev".into(),
            Stat::Rate => "rate".into(),
            Stat::Delta => "delta".into(),
            Stat::Quantile(m) if m % 10 == 0 => format!("p{}", m / 10),
            Stat::Quantile(m) => format!("p{}.{}", m / 10, m % 10),
        }
    }
}

/// Which event types get which summaries: the first rule whose pattern
/// matches wins.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// A pattern over the whole event type, `*` matching any characters.
    pattern: String,
    stats: Vec<Stat>,
}

/// Which destinations get summaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Targets {
    /// The UNIS/MS sink.
    pub ms: bool,
    /// The probe's data file.
    pub data_file: bool,
    /// Standard output.
    pub stdout: bool,
}

/// A probe's `aggregate` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateSpec {
    /// The window.
    pub window: Window,
    rules: Vec<Rule>,
    /// Destinations that get the summaries; the others get raw samples.
    pub to: Targets,
    /// Whether the summaries' destinations get the raw samples too.
    pub keep_raw: bool,
}

/// A refused `aggregate`: the key below it, its value, what was expected.
#[derive(Debug, PartialEq)]
pub struct AggregateError {
    /// Below `aggregate`, e.g. `summaries/0/stats/1`.
    pub key: String,
    /// The value.
    pub value: Json,
    /// What was expected.
    pub expected: String,
}

fn error(key: impl Into<String>, value: &Json, expected: impl Into<String>) -> AggregateError {
    AggregateError {
        key: key.into(),
        value: value.clone(),
        expected: expected.into(),
    }
}

/// The longest window: a day.
pub const MAX_WINDOW_SECONDS: f64 = 86_400.0;
/// The most collections in a window.
pub const MAX_WINDOW_COLLECTIONS: u64 = 100_000;

impl AggregateSpec {
    /// Reads `aggregate`.
    pub fn from_json(v: &Json) -> Result<Self, AggregateError> {
        let window = match &v["window"] {
            Json::Number(n) => {
                let s = n
                    .as_f64()
                    .filter(|s| s.is_finite() && (1.0..=MAX_WINDOW_SECONDS).contains(s))
                    .ok_or_else(|| {
                        error(
                            "window",
                            &v["window"],
                            format!(
                                "seconds from 1 to {MAX_WINDOW_SECONDS}, or {{\"collections\": n}}"
                            ),
                        )
                    })?;
                Window::Time((s * 1e6) as u64)
            }
            Json::Object(o) if o.len() == 1 && o.contains_key("collections") => {
                let n = o["collections"]
                    .as_u64()
                    .filter(|n| (1..=MAX_WINDOW_COLLECTIONS).contains(n))
                    .ok_or_else(|| {
                        error(
                            "window/collections",
                            &o["collections"],
                            format!("1 to {MAX_WINDOW_COLLECTIONS} collections"),
                        )
                    })?;
                Window::Collections(n as u32)
            }
            other => {
                return Err(error("window", other, "seconds, or {\"collections\": n}"));
            }
        };
        let summaries = v["summaries"]
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                error(
                    "summaries",
                    &v["summaries"],
                    "a non-empty list of {\"match\": pattern, \"stats\": [...]}",
                )
            })?;
        let mut rules = Vec::new();
        for (i, r) in summaries.iter().enumerate() {
            let pattern = r["match"]
                .as_str()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    error(
                        format!("summaries/{i}/match"),
                        &r["match"],
                        "an event type pattern (* matches any characters)",
                    )
                })?;
            let names = r["stats"]
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| {
                    error(
                        format!("summaries/{i}/stats"),
                        &r["stats"],
                        "a non-empty list of summaries",
                    )
                })?;
            let mut stats = Vec::new();
            for (j, s) in names.iter().enumerate() {
                let stat = s.as_str().and_then(Stat::parse).ok_or_else(|| {
                    error(
                        format!("summaries/{i}/stats/{j}"),
                        s,
                        "mean, min, max, last, sum, count, stddev, rate, delta or a quantile p0 to p100 (p99.9)",
                    )
                })?;
                if !stats.contains(&stat) {
                    stats.push(stat);
                }
            }
            rules.push(Rule {
                pattern: pattern.to_owned(),
                stats,
            });
        }
        let to = match &v["to"] {
            Json::Null => Targets {
                ms: true,
                data_file: true,
                stdout: true,
            },
            Json::Array(items) if !items.is_empty() => {
                let mut t = Targets {
                    ms: false,
                    data_file: false,
                    stdout: false,
                };
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some("ms") => t.ms = true,
                        Some("data_file") => t.data_file = true,
                        Some("stdout") => t.stdout = true,
                        _ => return Err(error(format!("to/{i}"), item, "ms, data_file or stdout")),
                    }
                }
                t
            }
            other => {
                return Err(error(
                    "to",
                    other,
                    "a non-empty list of ms, data_file, stdout",
                ));
            }
        };
        let keep_raw = match &v["keep_raw"] {
            Json::Null => false,
            Json::Bool(b) => *b,
            other => return Err(error("keep_raw", other, "true or false")),
        };
        if let Some(o) = v.as_object()
            && let Some(k) = o
                .keys()
                .find(|k| !["window", "summaries", "to", "keep_raw"].contains(&k.as_str()))
        {
            return Err(error(
                k.clone(),
                &o[k],
                "no such key (window, summaries, to, keep_raw)",
            ));
        }
        Ok(Self {
            window,
            rules,
            to,
            keep_raw,
        })
    }

    /// The summaries of `event_type`, if a rule matches it.
    fn stats_of(&self, event_type: &str) -> Option<&[Stat]> {
        self.rules
            .iter()
            .find(|r| glob(&r.pattern, event_type))
            .map(|r| r.stats.as_slice())
    }
}

/// Whether `text` matches `pattern`, where `*` matches any characters.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return true;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// One series' state.
struct Series {
    subject: Name,
    /// Its summaries, and each one's event type.
    stats: Vec<(Stat, Name)>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    last: f64,
    /// Welford's running mean and sum of squared deviations.
    mean: f64,
    m2: f64,
    sketch: Option<Sketch>,
    /// The counter's last reading and when (kept across windows).
    prev: Option<(u64, Timestamp)>,
    /// The increase over the window's steps whose advance is known, and
    /// how long those steps took, µs.
    delta: u64,
    span: u64,
    known_steps: u32,
    last_ts: Timestamp,
    /// Where the values came from, which the summaries carry.
    source: Source,
}

impl Series {
    fn new(subject: &Name, event_type: &str, stats: &[Stat]) -> Self {
        let quantiles = stats.iter().any(|s| matches!(s, Stat::Quantile(_)));
        Self {
            subject: subject.clone(),
            stats: stats
                .iter()
                .map(|s| (*s, Name::from(format!("{event_type}:{}", s.suffix()))))
                .collect(),
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            last: 0.0,
            mean: 0.0,
            m2: 0.0,
            sketch: quantiles.then(Sketch::default),
            prev: None,
            delta: 0,
            span: 0,
            known_steps: 0,
            last_ts: Timestamp(0),
            source: Source::Proc,
        }
    }

    fn add(&mut self, s: &Sample) {
        let x = match s.value {
            Value::Int(v) => {
                let step = match self.prev {
                    Some(_) if s.reset => None,
                    Some((p, at)) if s.ts > at => {
                        let width = if p <= u64::from(u32::MAX) && v <= u64::from(u32::MAX) {
                            Width::Bits32
                        } else {
                            Width::Bits64
                        };
                        counter::delta(p, v, width, u64::MAX)
                            .value()
                            .map(|d| (d, s.ts.0 - at.0))
                    }
                    _ => None,
                };
                if let Some((d, us)) = step {
                    self.delta = self.delta.saturating_add(d);
                    self.span = self.span.saturating_add(us);
                    self.known_steps += 1;
                }
                self.prev = Some((v, s.ts));
                v as f64
            }
            Value::Float(f) if f.is_finite() => f,
            _ => return,
        };
        self.count += 1;
        self.sum += x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        self.last = x;
        let d = x - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (x - self.mean);
        if let Some(k) = &mut self.sketch {
            k.add(x);
        }
        self.last_ts = s.ts;
        self.source = s.source;
    }

    /// The window's summaries into `out`, at `ts`; then starts the next.
    fn flush(&mut self, ts: Timestamp, out: &mut Vec<Sample>) {
        if self.count == 0 {
            return;
        }
        for (stat, event_type) in &self.stats {
            let value = match stat {
                Stat::Mean => Some(Value::Float(self.mean)),
                Stat::Min => Some(Value::Float(self.min)),
                Stat::Max => Some(Value::Float(self.max)),
                Stat::Last => Some(Value::Float(self.last)),
                Stat::Sum => Some(Value::Float(self.sum)),
                Stat::Count => Some(Value::Int(self.count)),
                Stat::Stddev => Some(Value::Float((self.m2 / self.count as f64).sqrt())),
                Stat::Quantile(m) => self
                    .sketch
                    .as_ref()
                    .and_then(|k| k.quantile(f64::from(*m) / 1000.0))
                    .map(Value::Float),
                // Unknown (no step with a known advance) is no sample.
                Stat::Delta => (self.known_steps > 0).then_some(Value::Int(self.delta)),
                Stat::Rate => (self.known_steps > 0 && self.span > 0)
                    .then(|| Value::Float(self.delta as f64 / (self.span as f64 / 1e6))),
            };
            if let Some(value) = value {
                out.push(Sample::new(
                    ts,
                    &self.subject,
                    event_type,
                    value,
                    self.source,
                ));
            }
        }
        self.count = 0;
        self.sum = 0.0;
        self.min = f64::INFINITY;
        self.max = f64::NEG_INFINITY;
        self.mean = 0.0;
        self.m2 = 0.0;
        self.delta = 0;
        self.span = 0;
        self.known_steps = 0;
        if let Some(k) = &mut self.sketch {
            k.clear();
        }
    }
}

/// One probe's windows.
pub struct Aggregator {
    spec: AggregateSpec,
    series: HashMap<(Name, Name), Series>,
    /// Event types no rule matches (not summarised), remembered so that
    /// each is matched once.
    unmatched: std::collections::HashSet<Name>,
    /// The current window's end (time windows) or its collections so far.
    window_end: Option<Timestamp>,
    collections: u32,
}

impl Aggregator {
    /// An aggregator for `spec`.
    pub fn new(spec: AggregateSpec) -> Self {
        Self {
            spec,
            series: HashMap::new(),
            unmatched: std::collections::HashSet::new(),
            window_end: None,
            collections: 0,
        }
    }

    /// One collection's samples, taken at `ts`; the summaries of every
    /// window it closed go to `out`.
    pub fn collected(&mut self, ts: Timestamp, samples: &[Sample], out: &mut Vec<Sample>) {
        if let Window::Time(len) = self.spec.window {
            let end = *self
                .window_end
                .get_or_insert(Timestamp((ts.0 / len + 1) * len));
            if ts >= end {
                self.flush_at(end, out);
                self.window_end = Some(Timestamp((ts.0 / len + 1) * len));
            }
        }
        for s in samples {
            self.add(s);
        }
        if let Window::Collections(n) = self.spec.window {
            self.collections += 1;
            if self.collections >= n {
                self.flush_at(ts, out);
                self.collections = 0;
            }
        }
    }

    fn add(&mut self, s: &Sample) {
        if self.unmatched.contains(&s.event_type) {
            return;
        }
        // The key is two reference-counted names: no copy of the text.
        let key = (s.subject.clone(), s.event_type.clone());
        if let Some(series) = self.series.get_mut(&key) {
            series.add(s);
            return;
        }
        match self.spec.stats_of(&s.event_type) {
            Some(stats) => {
                let mut series = Series::new(&s.subject, &s.event_type, stats);
                series.add(s);
                self.series.insert(key, series);
            }
            None => {
                self.unmatched.insert(s.event_type.clone());
            }
        }
    }

    fn flush_at(&mut self, ts: Timestamp, out: &mut Vec<Sample>) {
        for series in self.series.values_mut() {
            series.flush(ts, out);
        }
    }

    /// The open window's summaries, each at its series' last sample's
    /// time (shutdown).
    pub fn finish(&mut self, out: &mut Vec<Sample>) {
        for series in self.series.values_mut() {
            let at = series.last_ts;
            series.flush(at, out);
        }
        self.collections = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sketch::ALPHA;
    use serde_json::json;

    fn spec(v: Json) -> AggregateSpec {
        AggregateSpec::from_json(&v).unwrap()
    }

    fn sample(ts_s: u64, subject: &str, et: &str, value: Value) -> Sample {
        Sample::new(
            Timestamp(ts_s * 1_000_000),
            &Name::from(subject),
            &Name::from(et),
            value,
            crate::sample::Source::Proc,
        )
    }

    fn value_of(out: &[Sample], et: &str) -> Option<Value> {
        out.iter()
            .find(|s| &*s.event_type == et)
            .map(|s| s.value.clone())
    }

    #[test]
    fn exact_summaries_of_a_known_sequence() {
        let mut a = Aggregator::new(spec(json!({"window": {"collections": 5},
            "summaries": [{"match": "*:free", "stats": ["mean", "min", "max", "last", "sum", "count", "stddev", "p50", "p99.9"]}]})));
        let mut out = Vec::new();
        for (i, v) in [2.0, 4.0, 4.0, 4.0, 6.0].iter().enumerate() {
            a.collected(
                Timestamp(i as u64 * 1_000_000),
                &[
                    sample(i as u64, "node", "m:free", Value::Float(*v)),
                    sample(i as u64, "node", "m:other", Value::Float(1.0)),
                ],
                &mut out,
            );
        }
        let f = |s: &str| match value_of(&out, &format!("m:free:{s}")) {
            Some(Value::Float(x)) => x,
            Some(Value::Int(n)) => n as f64,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(f("mean"), 4.0);
        assert_eq!(f("min"), 2.0);
        assert_eq!(f("max"), 6.0);
        assert_eq!(f("last"), 6.0);
        assert_eq!(f("sum"), 20.0);
        assert_eq!(f("count"), 5.0);
        assert!((f("stddev") - 1.2649110640673518).abs() < 1e-12);
        assert!((f("p50") - 4.0).abs() <= 4.0 * ALPHA);
        // Rank floor(0.999 x 4) = 3 of [2, 4, 4, 4, 6]: 4 (p100 is the max).
        assert!((f("p99.9") - 4.0).abs() <= 4.0 * ALPHA);
        assert!(
            value_of(&out, "m:other:mean").is_none(),
            "no rule matches it"
        );
        // The window's end (its last collection) is the summaries' ts.
        assert!(out.iter().all(|s| s.ts == Timestamp(4_000_000)));
        assert_eq!(out.len(), 9);
    }

    #[test]
    fn time_windows_align_and_empty_windows_say_nothing() {
        let mut a = Aggregator::new(spec(json!({"window": 10,
            "summaries": [{"match": "*", "stats": ["count"]}]})));
        let mut out = Vec::new();
        for t in [3, 5, 9] {
            a.collected(
                Timestamp(t * 1_000_000),
                &[sample(t, "n", "e", Value::Int(1))],
                &mut out,
            );
        }
        assert!(out.is_empty());
        // 10..20 has no sample: the collection at 25 closes [0, 10) only.
        a.collected(
            Timestamp(25_000_000),
            &[sample(25, "n", "e", Value::Int(1))],
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].ts, Timestamp(10_000_000));
        assert_eq!(out[0].value, Value::Int(3));
        a.collected(Timestamp(31_000_000), &[], &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].ts, Timestamp(30_000_000));
        assert_eq!(out[1].value, Value::Int(1));
        // Nothing since: no summary, not a zero.
        a.collected(Timestamp(45_000_000), &[], &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn rates_and_deltas_through_wraps_and_resets() {
        let mut a = Aggregator::new(spec(json!({"window": {"collections": 4},
            "summaries": [{"match": "*bytes*", "stats": ["rate", "delta"]}]})));
        let mut out = Vec::new();
        let near_wrap = u64::from(u32::MAX) - 99;
        // +100 in 1 s across a 32-bit wrap, then a reset (flagged by the
        // probe: that step's advance is unknown), then +50 in 1 s.
        let mut reset = sample(2, "port:eth0", "bytes", Value::Int(1000));
        reset.reset = true;
        for s in [
            sample(0, "port:eth0", "bytes", Value::Int(near_wrap)),
            sample(1, "port:eth0", "bytes", Value::Int(0)),
            reset,
            sample(3, "port:eth0", "bytes", Value::Int(1050)),
        ] {
            a.collected(s.ts, std::slice::from_ref(&s), &mut out);
        }
        assert_eq!(value_of(&out, "bytes:delta"), Some(Value::Int(150)));
        assert_eq!(value_of(&out, "bytes:rate"), Some(Value::Float(75.0)));
        // The next window starts from the last reading.
        out.clear();
        for t in 4..=7 {
            let s = sample(t, "port:eth0", "bytes", Value::Int(1050 + 10 * (t - 3)));
            a.collected(s.ts, std::slice::from_ref(&s), &mut out);
        }
        assert_eq!(value_of(&out, "bytes:delta"), Some(Value::Int(40)));
        assert_eq!(value_of(&out, "bytes:rate"), Some(Value::Float(10.0)));
    }

    #[test]
    fn a_first_reading_alone_has_no_rate() {
        let mut a = Aggregator::new(spec(json!({"window": {"collections": 1},
            "summaries": [{"match": "*", "stats": ["rate", "max"]}]})));
        let mut out = Vec::new();
        a.collected(
            Timestamp(0),
            &[sample(0, "n", "c", Value::Int(5))],
            &mut out,
        );
        assert_eq!(value_of(&out, "c:rate"), None);
        assert_eq!(value_of(&out, "c:max"), Some(Value::Float(5.0)));
    }

    #[test]
    fn patterns() {
        assert!(glob("*", "anything"));
        assert!(glob(
            "ps:*:cpu:*",
            "ps:tools:blipp:linux:cpu:utilization:user"
        ));
        assert!(!glob("ps:*:cpu:*", "ps:tools:blipp:linux:memory:free"));
        assert!(glob("*:free", "memory:free"));
        assert!(!glob("*:free", "memory:free:x"));
        assert!(glob("a*b*c", "abc"));
        assert!(!glob("a*b*c", "acb"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (v, key) in [
            (
                json!({"window": 0, "summaries": [{"match": "*", "stats": ["max"]}]}),
                "window",
            ),
            (
                json!({"window": {"collections": 0}, "summaries": [{"match": "*", "stats": ["max"]}]}),
                "window/collections",
            ),
            (json!({"window": 60}), "summaries"),
            (
                json!({"window": 60, "summaries": [{"match": "*", "stats": ["median"]}]}),
                "summaries/0/stats/0",
            ),
            (
                json!({"window": 60, "summaries": [{"match": "*", "stats": ["p101"]}]}),
                "summaries/0/stats/0",
            ),
            (
                json!({"window": 60, "summaries": [{"stats": ["max"]}]}),
                "summaries/0/match",
            ),
            (
                json!({"window": 60, "summaries": [{"match": "*", "stats": ["max"]}], "to": ["influx"]}),
                "to/0",
            ),
            (
                json!({"window": 60, "summaries": [{"match": "*", "stats": ["max"]}], "windw": 1}),
                "windw",
            ),
        ] {
            let e = AggregateSpec::from_json(&v).unwrap_err();
            assert_eq!(e.key, key, "{v}");
        }
        assert_eq!(Stat::parse("p99.9"), Some(Stat::Quantile(999)));
        assert_eq!(Stat::Quantile(999).suffix(), "p99.9");
        assert_eq!(Stat::Quantile(500).suffix(), "p50");
    }
}
