//! The /proc variant: per-device counters and rates from /proc/diskstats.

use std::collections::HashMap;

use super::{Options, event_type};
use crate::config::ProbeConfig;
use crate::counter::{Counter, Width};
use crate::probe::{Getter, Probe, ProbeError};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::procfs::diskstats::{self, DiskStat};
use crate::source::read::KernelFile;

const SECTOR_BYTES: f64 = 512.0;

/// Cumulative counters reported per device.
const COUNTERS: [(&str, Getter<DiskStat>); 4] = [
    ("requests:read", |d| Some(d.reads)),
    ("requests:write", |d| Some(d.writes)),
    ("sectors:read", |d| Some(d.sectors_read)),
    ("sectors:write", |d| Some(d.sectors_written)),
];

/// Per-interval rates reported per device.
const RATES: [&str; 5] = [
    "utilization:iops:read",
    "utilization:iops:write",
    "utilization:bytes:read",
    "utilization:bytes:write",
    "utilization:busy",
];

#[derive(Default)]
struct DevicePrev {
    subject: Option<Name>,
    reads: Counter,
    writes: Counter,
    sectors_read: Counter,
    sectors_written: Counter,
    io_ms: Counter,
}

/// Reads /proc/diskstats.
pub(super) struct DiskProbe {
    file: KernelFile,
    stats: Vec<DiskStat>,
    only: Option<Vec<String>>,
    prev: HashMap<String, DevicePrev>,
    last_ts: Option<Timestamp>,
    counter_types: [Name; COUNTERS.len()],
    rate_types: [Name; RATES.len()],
}

impl DiskProbe {
    pub(super) fn new(config: &ProbeConfig, options: &Options) -> Self {
        Self {
            file: KernelFile::new(&config.proc_dir, "diskstats"),
            stats: Vec::new(),
            only: options.devices.clone(),
            prev: HashMap::new(),
            last_ts: None,
            counter_types: COUNTERS.map(|(s, _)| event_type(s)),
            rate_types: RATES.map(event_type),
        }
    }
}

/// The /proc variant as a probe.
pub(super) fn build(config: &ProbeConfig, options: &Options) -> Result<Box<dyn Probe>, ProbeError> {
    Ok(Box::new(DiskProbe::new(config, options)))
}

/// Largest plausible per-second advance of request counts and sectors: far
/// above any real device (16 M requests/s, 64 GiB/s), far below a wrap.
const MAX_REQUESTS_PER_S: f64 = 16.0 * 1024.0 * 1024.0;
const MAX_SECTORS_PER_S: f64 = 128.0 * 1024.0 * 1024.0;

fn bound(per_second: f64, seconds: f64) -> u64 {
    // Saturating float-to-int conversion.
    (per_second * seconds.max(1.0)) as u64
}

impl Probe for DiskProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let stats = &mut self.stats;
        self.file.parse(|text| diskstats::parse_into(text, stats))?;
        let elapsed = self.last_ts.map(|last| ts.seconds_since(last));
        self.last_ts = Some(ts);
        for d in &self.stats {
            match &self.only {
                Some(only) if !only.contains(&d.name) => continue,
                // Devices that never saw I/O (unused loop and ram devices) are noise.
                None if d.reads == 0 && d.writes == 0 => continue,
                _ => {}
            }
            if !self.prev.contains_key(&d.name) {
                self.prev.insert(d.name.clone(), DevicePrev::default());
            }
            let Some(prev) = self.prev.get_mut(&d.name) else {
                continue;
            };
            let subject = prev
                .subject
                .get_or_insert_with(|| Name::from(format!("disk:{}", d.name)))
                .clone();
            for (event_type, (_, get)) in self.counter_types.iter().zip(COUNTERS) {
                if let Some(v) = get(d) {
                    out.push(Sample::new(
                        ts,
                        &subject,
                        event_type,
                        Value::Int(v),
                        Source::Proc,
                    ));
                }
            }
            let secs = elapsed.unwrap_or(0.0);
            let ms = secs * 1000.0;
            let deltas = [
                prev.reads
                    .update(d.reads, Width::ULONG, bound(MAX_REQUESTS_PER_S, secs)),
                prev.writes
                    .update(d.writes, Width::ULONG, bound(MAX_REQUESTS_PER_S, secs)),
                prev.sectors_read.update(
                    d.sectors_read,
                    Width::ULONG,
                    bound(MAX_SECTORS_PER_S, secs),
                ),
                prev.sectors_written.update(
                    d.sectors_written,
                    Width::ULONG,
                    bound(MAX_SECTORS_PER_S, secs),
                ),
                d.io_ms.and_then(|v| {
                    prev.io_ms
                        .update(v, Width::Bits32, (ms * 1.05) as u64 + 1000)
                }),
            ];
            if secs <= 0.0 {
                continue;
            }
            let scale = [
                1.0 / secs,
                1.0 / secs,
                SECTOR_BYTES / secs,
                SECTOR_BYTES / secs,
                1.0 / ms,
            ];
            for ((event_type, delta), scale) in self.rate_types.iter().zip(deltas).zip(scale) {
                let Some(delta) = delta else { continue };
                match delta.value() {
                    Some(v) => {
                        let mut rate = v as f64 * scale;
                        if event_type.ends_with(":busy") {
                            rate = rate.min(1.0);
                        }
                        out.push(Sample::new(
                            ts,
                            &subject,
                            event_type,
                            Value::Float(rate),
                            Source::Proc,
                        ));
                    }
                    None => {
                        tracing::debug!(device = %d.name, %event_type, "counter reset, no rate this interval")
                    }
                }
            }
        }
        Ok(())
    }
}
