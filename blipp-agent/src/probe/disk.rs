//! Block devices: per-device counters and rates from /proc/diskstats, and,
//! where the kernel allows, host-wide completed requests per operation
//! counted by the `block_rq_complete` eBPF program.

use std::collections::HashMap;

use blipp_common::disk::{DISK_OPS, DiskCounters, DiskOp};
use serde::Deserialize;

use super::{BuildContext, Built, Fallback, Getter, Probe, ProbeError, ProbeSpec, choose};
use crate::config::ProbeConfig;
use crate::counter::{Counter, Width};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::ebpf::disk::DiskOpTotals;
use crate::source::procfs::diskstats::{self, DiskStat};
use crate::source::read::KernelFile;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "disk",
    summary: "block devices: requests, sectors, IOPS, bytes/s, busy fraction (/proc/diskstats; eBPF block_rq_complete)",
    fallback: Fallback::Proc,
    build,
};

const PREFIX: &str = "ps:tools:blipp:linux:disk:";
const SECTOR_BYTES: f64 = 512.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Only these devices.
    devices: Option<Vec<String>>,
}

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

struct DiskProbe {
    file: KernelFile,
    stats: Vec<DiskStat>,
    only: Option<Vec<String>>,
    prev: HashMap<String, DevicePrev>,
    last_ts: Option<Timestamp>,
    counter_types: [Name; COUNTERS.len()],
    rate_types: [Name; RATES.len()],
    ebpf: Option<EbpfTotals>,
}

struct EbpfTotals {
    totals: DiskOpTotals,
    read: [DiskCounters; DISK_OPS as usize],
    node: Name,
    types: [(Name, Name); DISK_OPS as usize],
}

fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    let name = |s: &str| Name::from(format!("{PREFIX}{s}"));
    let proc =
        |config: &ProbeConfig, only: Option<Vec<String>>, ebpf: Option<EbpfTotals>| DiskProbe {
            file: KernelFile::new(&config.proc_dir, "diskstats"),
            stats: Vec::new(),
            only,
            prev: HashMap::new(),
            last_ts: None,
            counter_types: COUNTERS.map(|(s, _)| name(s)),
            rate_types: RATES.map(name),
            ebpf,
        };
    let only = options.devices;
    let only_proc = only.clone();
    choose(
        config,
        ctx,
        |ctx| {
            let kernel = ctx
                .kernel
                .get()
                .map_err(|reason| ProbeError::EbpfRequired {
                    probe: config.name.clone(),
                    reason,
                })?;
            let totals = DiskOpTotals::attach(kernel)?;
            let ebpf = EbpfTotals {
                totals,
                read: [DiskCounters::default(); DISK_OPS as usize],
                node: ctx.node.clone(),
                types: DiskOp::ALL.map(|op| {
                    (
                        name(&format!("requests:{}", op.name())),
                        name(&format!("sectors:{}", op.name())),
                    )
                }),
            };
            Ok(Box::new(proc(config, only, Some(ebpf))) as Box<dyn Probe>)
        },
        |_| Ok(Box::new(proc(config, only_proc, None)) as Box<dyn Probe>),
    )
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
        if let Some(e) = &mut self.ebpf {
            e.totals.read(&mut e.read)?;
            for ((requests, sectors), c) in e.types.iter().zip(&e.read) {
                out.push(Sample::new(
                    ts,
                    &e.node,
                    requests,
                    Value::Int(c.requests),
                    Source::Ebpf,
                ));
                out.push(Sample::new(
                    ts,
                    &e.node,
                    sectors,
                    Value::Int(c.sectors),
                    Source::Ebpf,
                ));
            }
        }
        Ok(())
    }
}
