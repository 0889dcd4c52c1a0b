//! The eBPF variant: per device and operation, completed requests, bytes
//! and latency percentiles counted by the `block_rq_complete` program, for
//! every whole blk-mq disk; everything else from the /proc variant.
//!
//! Coverage: the program sees requests, so it covers request-based (blk-mq)
//! disks, known by their `/sys/block/<name>/mq` directory. Partitions (the
//! kernel accounts their requests to the whole disk), bio-based devices
//! (device-mapper, md, zram, brd) and disks beyond the program's slot table
//! are reported from /proc/diskstats, as are the quantities only /proc has
//! (merges, time, in-flight, busy fraction, queue, await). For a covered
//! disk, the requests, sectors, IOPS and bytes/s samples of the /proc
//! variant are replaced by the program's (same event types, `source:
//! ebpf`; cumulative counters count from when the program was attached).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use blipp_common::disk::{DISK_OPS, DiskOp, LATENCY_KINDS, LATENCY_OPS, LatencyKind};
use blipp_common::histogram::{self, BUCKETS, Buckets};

use super::{EventTypes, Options, event_type, proc};
use crate::config::ProbeConfig;
use crate::probe::{BuildContext, Probe, ProbeError};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::ebpf::disk::{DeviceTotals, DiskMaps, DiskSnapshot};

/// Latency percentiles reported per operation and kind, with the suffix of
/// their event type.
const PERCENTILES: [(f64, &str); 4] = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (1.0, "max")];

/// The disks /proc reports that this variant replaces: covered ones.
struct Disk {
    /// `disk:<name>`, as the /proc variant names it.
    subject: Name,
    /// The kernel's device number, when the disk is blk-mq.
    dev: Option<u32>,
    /// Totals at the previous collection, for rates and histogram deltas.
    last: Option<DeviceTotals>,
    /// The collection that last saw it in /proc/diskstats.
    seen: u64,
}

struct EbpfDiskProbe {
    proc: proc::DiskProbe,
    maps: DiskMaps,
    snapshot: DiskSnapshot,
    sys_dir: PathBuf,
    types: EventTypes,
    /// `latency:<op>:<kind>:<percentile>`, microseconds.
    latency: Vec<[[Name; PERCENTILES.len()]; LATENCY_KINDS as usize]>,
    disks: HashMap<Name, Disk>,
    /// Totals of a covered disk with no completion yet.
    zero: DeviceTotals,
    last_ts: Option<Timestamp>,
    collection: u64,
    overflow_logged: bool,
}

/// Attaches the program; fails (and the caller falls back) when the
/// kernel does not allow it.
pub(super) fn build(
    config: &ProbeConfig,
    options: &Options,
    ctx: &mut BuildContext<'_>,
) -> Result<Box<dyn Probe>, ProbeError> {
    let kernel = ctx.kernel.get().map_err(ProbeError::EbpfUnavailable)?;
    let mut maps = DiskMaps::attach(kernel)?;
    ctx.costs
        .add_programs(std::mem::take(&mut maps.programs), kernel.stats_enabled());
    Ok(Box::new(EbpfDiskProbe {
        proc: proc::DiskProbe::new(config, options),
        maps,
        snapshot: DiskSnapshot::default(),
        sys_dir: config.sys_dir.clone(),
        types: EventTypes::new(),
        latency: (0..LATENCY_OPS as usize)
            .map(|op| {
                LatencyKind::ALL.map(|kind| {
                    PERCENTILES.map(|(_, p)| {
                        event_type(&format!(
                            "latency:{}:{}:{p}",
                            DiskOp::ALL[op].name(),
                            kind.name()
                        ))
                    })
                })
            })
            .collect(),
        disks: HashMap::new(),
        zero: DeviceTotals::empty(0),
        last_ts: None,
        collection: 0,
        overflow_logged: false,
    }))
}

/// The device number of whole disk `name` if it is request-based, from
/// sysfs (read once per disk).
fn blk_mq_dev(sys_dir: &Path, name: &str) -> Option<u32> {
    let block = sys_dir.join("block").join(name);
    if !block.join("mq").is_dir() {
        return None;
    }
    let text = std::fs::read_to_string(block.join("dev")).ok()?;
    let (major, minor) = text.trim().split_once(':')?;
    Some(blipp_common::disk::make_dev(
        major.parse().ok()?,
        minor.parse().ok()?,
    ))
}

/// The value below which a fraction `q` of the counts of `h` lie: the
/// midpoint of that bucket (at most 6.25% off), in nanoseconds.
pub(super) fn percentile(h: &Buckets, count: u64, q: f64) -> Option<u64> {
    if count == 0 {
        return None;
    }
    // The rank of the wanted value, 1-based: ceil(q * count), at least 1.
    let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
    let mut seen = 0;
    for (i, n) in h.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(histogram::midpoint(i));
        }
    }
    None
}

/// Indices of the /proc event types a covered disk gets from eBPF.
fn replaced(t: &EventTypes) -> Vec<Name> {
    let mut v: Vec<Name> = Vec::new();
    v.extend(t.requests.iter().take(4).cloned());
    v.extend(t.sectors.iter().take(3).cloned());
    v.extend(t.iops.iter().cloned());
    v.extend(t.bytes.iter().cloned());
    v
}

impl EbpfDiskProbe {
    /// Finds the disks in the /proc samples from `first` on, notes the
    /// covered ones, and drops their replaced samples.
    fn take_over(&mut self, out: &mut Vec<Sample>, first: usize) {
        let replaced = replaced(&self.types);
        let mut keep = first;
        for i in first..out.len() {
            let subject = out[i].subject.clone();
            let disk = self.disks.entry(subject.clone()).or_insert_with(|| {
                let name = subject.strip_prefix("disk:").unwrap_or(&subject);
                Disk {
                    dev: blk_mq_dev(&self.sys_dir, name),
                    subject: subject.clone(),
                    last: None,
                    seen: 0,
                }
            });
            disk.seen = self.collection;
            let covered = disk.dev.is_some_and(|dev| {
                self.snapshot.device(dev).is_some() || self.snapshot.overflow == 0
            });
            let drop = covered && replaced.iter().any(|t| **t == *out[i].event_type);
            if !drop {
                out.swap(keep, i);
                keep += 1;
            }
        }
        out.truncate(keep);
    }

    fn push_device(&mut self, ts: Timestamp, seconds: Option<f64>, out: &mut Vec<Sample>) {
        let Self {
            disks,
            snapshot,
            zero,
            types: t,
            latency,
            collection,
            ..
        } = self;
        for disk in disks.values_mut() {
            let Some(dev) = disk.dev.filter(|_| disk.seen == *collection) else {
                continue;
            };
            let now = match snapshot.device(dev) {
                Some(d) => d,
                // Covered, and no completion since the program was attached.
                None if snapshot.overflow == 0 => &*zero,
                None => continue,
            };
            let s = &disk.subject;
            let mut push = |et: &Name, v: Value| {
                out.push(Sample::new(ts, s, et, v, Source::Ebpf));
            };
            for (op, c) in now.ops.iter().enumerate().take(DISK_OPS as usize) {
                if let Some(et) = t.requests.get(op) {
                    push(et, Value::Int(c.requests));
                }
                if op < 3 {
                    push(&t.sectors[op], Value::Int(c.bytes / 512));
                }
            }
            if let (Some(secs), Some(last)) = (seconds.filter(|s| *s > 0.0), &disk.last) {
                for op in 0..4 {
                    let (a, b) = (now.ops[op], last.ops[op]);
                    let requests = a.requests.saturating_sub(b.requests);
                    push(&t.iops[op], Value::Float(requests as f64 / secs));
                    if op < 3 {
                        let bytes = a.bytes.saturating_sub(b.bytes);
                        push(&t.bytes[op], Value::Float(bytes as f64 / secs));
                    }
                }
                for (op, types) in latency.iter().enumerate() {
                    for kind in LatencyKind::ALL {
                        let mut delta = [0u64; BUCKETS];
                        let mut count = 0;
                        for ((d, a), b) in delta
                            .iter_mut()
                            .zip(now.histogram(op, kind))
                            .zip(last.histogram(op, kind))
                        {
                            *d = a.saturating_sub(*b);
                            count += *d;
                        }
                        for ((q, _), et) in PERCENTILES.iter().zip(&types[kind as usize]) {
                            if let Some(ns) = percentile(&delta, count, *q) {
                                push(et, Value::Float(ns as f64 / 1000.0));
                            }
                        }
                    }
                }
            }
            match &mut disk.last {
                Some(last) => last.clone_from(now),
                None => disk.last = Some(now.clone()),
            }
        }
    }
}

impl Probe for EbpfDiskProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let first = out.len();
        self.proc.collect(ts, out)?;
        self.maps.read(&mut self.snapshot)?;
        if self.snapshot.overflow > 0 && !self.overflow_logged {
            self.overflow_logged = true;
            tracing::warn!(
                completions = self.snapshot.overflow,
                "more disks than the eBPF slot table holds: the others are reported from /proc"
            );
        }
        self.collection += 1;
        self.take_over(out, first);
        let seconds = self.last_ts.map(|last| ts.seconds_since(last));
        self.last_ts = Some(ts);
        self.push_device(ts, seconds, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = [0u64; BUCKETS];
        // 90 requests at 100 µs, 9 at 1 ms, 1 at 20 ms.
        h[histogram::bucket(100_000)] = 90;
        h[histogram::bucket(1_000_000)] = 9;
        h[histogram::bucket(20_000_000)] = 1;
        let p = |q| percentile(&h, 100, q).unwrap() as f64;
        let close = |got: f64, want: f64| (got - want).abs() / want <= 0.0625;
        assert!(close(p(0.5), 100_000.0), "p50 {}", p(0.5));
        assert!(close(p(0.9), 100_000.0), "p90 {}", p(0.9));
        assert!(close(p(0.95), 1_000_000.0), "p95 {}", p(0.95));
        assert!(close(p(0.99), 1_000_000.0), "p99 {}", p(0.99));
        assert!(close(p(1.0), 20_000_000.0), "max {}", p(1.0));
        assert_eq!(percentile(&h, 0, 0.5), None);
    }
}
