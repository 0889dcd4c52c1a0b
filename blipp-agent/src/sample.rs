//! The unit of measurement that flows from probes to sinks.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Interned text (subjects, event types): created once per probe and cloned
/// by reference count on every sample.
pub type Name = Arc<str>;

/// Microseconds since the Unix epoch, the MS's `ts` unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The wall clock now.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// Seconds between `earlier` and `self` (zero if not later).
    pub fn seconds_since(self, earlier: Timestamp) -> f64 {
        self.0.saturating_sub(earlier.0) as f64 / 1e6
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let micros = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
        Self(u64::try_from(micros).unwrap_or(u64::MAX))
    }
}

/// Where a sample's number came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Counted in the kernel by one of blipp's eBPF programs.
    Ebpf,
    /// Read from /proc, /sys or netlink.
    Proc,
    /// Printed by a command or Nagios plugin that blipp ran.
    Command,
    /// Read from a log file that blipp follows.
    Log,
}

impl Source {
    /// The name printed in samples and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Ebpf => "ebpf",
            Source::Proc => "proc",
            Source::Command => "command",
            Source::Log => "log",
        }
    }

    /// The source of that name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Source::Ebpf, Source::Proc, Source::Command, Source::Log]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// A measured value. Integers stay integers so that counters survive the
/// trip to JSON exactly.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A cumulative counter or a count.
    Int(u64),
    /// A rate, fraction, size in kB or any other real quantity.
    Float(f64),
    /// A state such as a process's `R`/`S`.
    Text(Name),
}

/// One measurement: what was measured, when, of which subject, and how.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// When the source was read.
    pub ts: Timestamp,
    /// The measured thing: `node`, `port:<if>`, `disk:<dev>`, `process:<name>`
    /// locally; the UNIS sink maps these to hrefs.
    pub subject: Name,
    /// The event type, in the original BLiPP's namespace.
    #[serde(rename = "eventType")]
    pub event_type: Name,
    /// The value.
    pub value: Value,
    /// Where the number came from.
    pub source: Source,
    /// Set when a counter went backwards in a way no wrap explains (device
    /// re-attached, counters zeroed): the value restarts from the new base.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
}

impl Sample {
    /// A sample without flags.
    pub fn new(
        ts: Timestamp,
        subject: &Name,
        event_type: &Name,
        value: Value,
        source: Source,
    ) -> Self {
        Self {
            ts,
            subject: Arc::clone(subject),
            event_type: Arc::clone(event_type),
            value,
            source,
            reset: false,
        }
    }

    /// The same sample, marked as coming from a counter that was reset
    /// when `reset` is true.
    #[must_use]
    pub fn with_reset(mut self, reset: bool) -> Self {
        self.reset = reset;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_shape() {
        let s = Sample::new(
            Timestamp(1_700_000_000_123_456),
            &Name::from("node"),
            &Name::from("ps:tools:blipp:linux:cpu:load:onemin"),
            Value::Float(0.25),
            Source::Proc,
        );
        let line = serde_json::to_string(&s).unwrap();
        assert_eq!(
            line,
            r#"{"ts":1700000000123456,"subject":"node","eventType":"ps:tools:blipp:linux:cpu:load:onemin","value":0.25,"source":"proc"}"#
        );
        let reset = Sample {
            reset: true,
            value: Value::Int(7),
            ..s
        };
        let v: serde_json::Value = serde_json::to_value(&reset).unwrap();
        assert_eq!(v["reset"], true);
        assert_eq!(v["value"], 7);
    }
}
