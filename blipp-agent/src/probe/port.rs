//! Port capacity: each interface's link speed, in bytes per second (the
//! unit of UNIS's port `capacity` and of the `net` probe's byte counters,
//! so that utilization is one division), and its duplex, read along
//! ethtool netlink -> `SIOCETHTOOL` -> sysfs.
//!
//! Link speed changes rarely (a renegotiation, a cable), so the probe
//! re-reads it at most once per `refresh` seconds (default 300): a
//! collection before that reports nothing, and a read costs one netlink
//! request per interface, never a sysfs walk per tick. A speed the kernel
//! does not know yields no sample.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::{BuildContext, Built, Fallback, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::{ConfigError, ProbeConfig};
use crate::limits::{MAX_INTERVAL, MIN_INTERVAL};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::netlink::{Duplex, LinkSpeedReader, rtnetlink};

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "port",
    summary: "per-interface link capacity (bytes/s) and duplex (ethtool netlink, SIOCETHTOOL, /sys/class/net), re-read every `refresh` s",
    fallback: Fallback::Only(Source::Proc),
    programs: &[],
    reach: Reach::NONE,
    build,
    options: crate::config::option_keys::<Options>,
};

/// Seconds between two reads of the link speeds unless configured.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// Event type of the capacity, bytes per second.
pub const CAPACITY: &str = "ps:tools:blipp:linux:network:link:capacity";
/// Event type of the duplex, `"full"` or `"half"`.
pub const DUPLEX: &str = "ps:tools:blipp:linux:network:link:duplex";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Only these interfaces (default: every interface).
    interfaces: Option<Vec<String>>,
    /// Seconds between reads of the link speeds.
    refresh: Option<f64>,
}

struct PortProbe {
    speeds: LinkSpeedReader,
    only: Option<Vec<String>>,
    refresh: Duration,
    last_read: Option<Timestamp>,
    names: Vec<String>,
    subjects: HashMap<String, Name>,
    capacity: Name,
    duplex: Name,
    full: Name,
    half: Name,
}

fn build(config: &ProbeConfig, _ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    let refresh = match options.refresh {
        None => DEFAULT_REFRESH,
        Some(s) => Some(s)
            .filter(|s| (MIN_INTERVAL..=MAX_INTERVAL).contains(s))
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| {
                ConfigError::invalid(
                    "configuration",
                    &format!("/properties/configurations/probes/{}/refresh", config.name),
                    &serde_json::json!(s),
                    format!("expected a number of seconds from {MIN_INTERVAL} to {MAX_INTERVAL}"),
                )
            })?,
    };
    Ok(Built {
        probe: Box::new(PortProbe {
            speeds: LinkSpeedReader::new(&config.sys_dir),
            only: options.interfaces,
            refresh,
            last_read: None,
            names: Vec::new(),
            subjects: HashMap::new(),
            capacity: Name::from(CAPACITY),
            duplex: Name::from(DUPLEX),
            full: Name::from(Duplex::Full.as_str()),
            half: Name::from(Duplex::Half.as_str()),
        }),
        source: Source::Proc,
    })
}

impl PortProbe {
    /// Whether `ts` is a reading instant: the first, one `refresh` after
    /// the last, or after the clock went back.
    fn due(&self, ts: Timestamp) -> bool {
        self.last_read
            .is_none_or(|last| ts < last || u128::from(ts.0 - last.0) >= self.refresh.as_micros())
    }
}

impl Probe for PortProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        if !self.due(ts) {
            return Ok(());
        }
        self.last_read = Some(ts);
        self.names.clear();
        match &self.only {
            Some(only) => self.names.extend(only.iter().cloned()),
            None => self
                .names
                .extend(rtnetlink::links()?.into_iter().map(|l| l.name)),
        }
        for name in &self.names {
            let speed = self.speeds.read(name);
            let Some(bytes_per_second) = speed.bytes_per_second() else {
                continue;
            };
            let subject = self
                .subjects
                .entry(name.clone())
                .or_insert_with(|| Name::from(format!("port:{name}")));
            out.push(Sample::new(
                ts,
                subject,
                &self.capacity,
                Value::Int(bytes_per_second),
                Source::Proc,
            ));
            if let Some(d) = speed.duplex() {
                let text = match d {
                    Duplex::Full => &self.full,
                    Duplex::Half => &self.half,
                };
                out.push(Sample::new(
                    ts,
                    subject,
                    &self.duplex,
                    Value::Text(text.clone()),
                    Source::Proc,
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(refresh: Duration) -> PortProbe {
        PortProbe {
            speeds: LinkSpeedReader::new(std::path::Path::new("/sys")),
            only: Some(vec!["lo".to_owned()]),
            refresh,
            last_read: None,
            names: Vec::new(),
            subjects: HashMap::new(),
            capacity: Name::from(CAPACITY),
            duplex: Name::from(DUPLEX),
            full: Name::from("full"),
            half: Name::from("half"),
        }
    }

    #[test]
    fn reads_on_a_slow_cadence() {
        let mut p = probe(Duration::from_secs(60));
        let t0 = Timestamp(1_700_000_000_000_000);
        assert!(p.due(t0));
        p.last_read = Some(t0);
        assert!(!p.due(Timestamp(t0.0 + 59_999_999)));
        assert!(p.due(Timestamp(t0.0 + 60_000_000)));
        assert!(p.due(Timestamp(t0.0 - 1)), "clock went back");
    }

    /// `lo` has no speed: a read yields no sample, not -1.
    #[test]
    fn unknown_speed_is_no_sample() {
        let mut p = probe(DEFAULT_REFRESH);
        let mut out = Vec::new();
        p.collect(Timestamp::now(), &mut out).unwrap();
        assert!(out.is_empty(), "{out:?}");
        assert!(p.last_read.is_some());
    }
}
