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
use blipp_common::histogram;

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
    /// The collection that last updated `last`.
    last_collection: u64,
    /// The collection that last saw it in /proc/diskstats.
    seen: u64,
}

struct EbpfDiskProbe {
    proc: proc::DiskProbe,
    maps: DiskMaps,
    snapshot: DiskSnapshot,
    sys_dir: PathBuf,
    /// The /proc variant's event types (the same `Arc`s).
    types: EventTypes,
    /// Those of them that eBPF replaces for a covered disk.
    replaced: Vec<Name>,
    /// `latency:<op>:<kind>:<percentile>`, microseconds.
    latency: Vec<[[Name; PERCENTILES.len()]; LATENCY_KINDS as usize]>,
    disks: HashMap<Name, Disk>,
    /// Totals of a covered disk with no completion yet.
    zero: DeviceTotals,
    last_ts: Option<Timestamp>,
    collection: u64,
    uncovered_logged: bool,
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
    let proc = proc::DiskProbe::new(config, options);
    let types = proc.types().clone();
    Ok(Box::new(EbpfDiskProbe {
        proc,
        maps,
        snapshot: DiskSnapshot::default(),
        sys_dir: config.sys_dir.clone(),
        replaced: replaced(&types),
        types,
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
        uncovered_logged: false,
    }))
}

/// The device number of whole disk `name` if it is request-based, in the
/// programs' encoding.
fn blk_mq_dev(sys_dir: &Path, name: &str) -> Option<u32> {
    let (major, minor) = crate::source::sysfs::blk_mq_device(sys_dir, name)?;
    Some(blipp_common::disk::make_dev(major, minor))
}

/// The values below which the fractions `qs` (ascending) of the counts
/// `h` lie: the midpoints of those buckets (at most 6.25% off), in
/// nanoseconds; `None` for all when `h` counts nothing. One pass, no copy:
/// `h` is typically the difference of two histograms, computed on the fly.
pub(super) fn percentiles<const N: usize>(
    h: impl Iterator<Item = u64> + Clone,
    qs: &[f64; N],
) -> [Option<u64>; N] {
    let count: u64 = h.clone().sum();
    let mut out = [None; N];
    if count == 0 {
        return out;
    }
    // The rank of each wanted value, 1-based: ceil(q * count), at least 1.
    let rank = |q: f64| ((q * count as f64).ceil() as u64).clamp(1, count);
    let mut next = 0;
    let mut seen = 0;
    for (i, n) in h.enumerate() {
        seen += n;
        while next < N && seen >= rank(qs[next]) {
            out[next] = Some(histogram::midpoint(i));
            next += 1;
        }
        if next == N {
            break;
        }
    }
    out
}

/// The /proc event types a covered disk gets from eBPF.
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
    /// covered ones, and drops their replaced samples. The /proc variant
    /// writes a disk's samples one after the other and names them with
    /// the event types this probe shares with it, so a disk is looked up
    /// once per run of samples and event types are told apart by pointer.
    fn take_over(&mut self, out: &mut Vec<Sample>, first: usize) {
        let mut keep = first;
        let mut run: Option<(Name, bool)> = None;
        for i in first..out.len() {
            let covered = match &run {
                Some((subject, covered)) if **subject == *out[i].subject => *covered,
                _ => {
                    let covered = self.note_disk(&out[i].subject);
                    run = Some((out[i].subject.clone(), covered));
                    covered
                }
            };
            let drop = covered
                && self
                    .replaced
                    .iter()
                    .any(|t| Name::ptr_eq(t, &out[i].event_type));
            if !drop {
                out.swap(keep, i);
                keep += 1;
            }
        }
        out.truncate(keep);
    }

    /// Marks disk `subject` as seen in this collection; whether eBPF covers
    /// it.
    fn note_disk(&mut self, subject: &Name) -> bool {
        let disk = self.disks.entry(subject.clone()).or_insert_with(|| {
            let name = subject.strip_prefix("disk:").unwrap_or(subject);
            Disk {
                dev: blk_mq_dev(&self.sys_dir, name),
                subject: subject.clone(),
                last: None,
                last_collection: 0,
                seen: 0,
            }
        });
        disk.seen = self.collection;
        disk.dev
            .is_some_and(|dev| self.snapshot.device(dev).is_some() || !self.snapshot.uncovered)
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
                None if !snapshot.uncovered => &*zero,
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
            // `last` is the previous collection's: the operations whose
            // count did not move since then have the same histograms.
            let in_step = disk.last_collection + 1 == *collection;
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
                    if in_step && !now.moved[op] {
                        continue;
                    }
                    for kind in LatencyKind::ALL {
                        let delta = now
                            .histogram(op, kind)
                            .iter()
                            .zip(last.histogram(op, kind))
                            .map(|(a, b)| a.saturating_sub(*b));
                        let found = percentiles(delta, &PERCENTILES.map(|(q, _)| q));
                        for (ns, et) in found.iter().zip(&types[kind as usize]) {
                            if let Some(ns) = ns {
                                push(et, Value::Float(*ns as f64 / 1000.0));
                            }
                        }
                    }
                }
            }
            match &mut disk.last {
                Some(last) if in_step => {
                    last.ops = now.ops;
                    for (op, moved) in now.moved.iter().enumerate() {
                        if *moved {
                            last.latency[op] = now.latency[op];
                        }
                    }
                }
                Some(last) => last.clone_from(now),
                None => disk.last = Some(now.clone()),
            }
            disk.last_collection = *collection;
        }
    }
}

impl Probe for EbpfDiskProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let first = out.len();
        self.proc.collect(ts, out)?;
        self.maps.read(&mut self.snapshot)?;
        if self.snapshot.uncovered && !self.uncovered_logged {
            self.uncovered_logged = true;
            tracing::warn!(
                slots = blipp_common::disk::MAX_DISKS,
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
    use blipp_common::histogram::BUCKETS;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = [0u64; BUCKETS];
        // 90 requests at 100 µs, 9 at 1 ms, 1 at 20 ms.
        h[histogram::bucket(100_000)] = 90;
        h[histogram::bucket(1_000_000)] = 9;
        h[histogram::bucket(20_000_000)] = 1;
        let p = |q| percentiles(h.iter().copied(), &[q])[0].unwrap() as f64;
        let close = |got: f64, want: f64| (got - want).abs() / want <= 0.0625;
        assert!(close(p(0.5), 100_000.0), "p50 {}", p(0.5));
        assert!(close(p(0.9), 100_000.0), "p90 {}", p(0.9));
        assert!(close(p(0.95), 1_000_000.0), "p95 {}", p(0.95));
        assert!(close(p(0.99), 1_000_000.0), "p99 {}", p(0.99));
        assert!(close(p(1.0), 20_000_000.0), "max {}", p(1.0));
        // All at once, in one pass, agree with one at a time.
        let qs = [0.5, 0.9, 0.95, 0.99, 1.0];
        let all = percentiles(h.iter().copied(), &qs);
        for (q, got) in qs.iter().zip(all) {
            assert_eq!(got.unwrap() as f64, p(*q), "q {q}");
        }
        assert_eq!(percentiles([0u64; BUCKETS].into_iter(), &qs), [None; 5]);
    }

    /// The difference of two histograms, as the probe computes it between
    /// collections: only what was added in between counts.
    #[test]
    fn percentiles_of_a_difference() {
        let mut before = [0u64; BUCKETS];
        before[histogram::bucket(20_000_000)] = 50;
        let mut now = before;
        now[histogram::bucket(100_000)] = 10;
        let delta = now.iter().zip(&before).map(|(a, b)| a.saturating_sub(*b));
        let [p50, max] = percentiles(delta, &[0.5, 1.0]).map(|v| v.unwrap() as f64);
        assert!((p50 - 100_000.0).abs() / 100_000.0 <= 0.0625, "p50 {p50}");
        assert!((max - 100_000.0).abs() / 100_000.0 <= 0.0625, "max {max}");
    }
}
