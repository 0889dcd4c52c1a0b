//! The /proc variant: per-device counters and rates from /proc/diskstats,
//! for disks and partitions alike (subject `disk:<name>`).
//!
//! Every cumulative field of the kernel's layout is reported as it is
//! (integers, marked `reset` when the counter restarted), then the rates of
//! the interval since the previous collection: IOPS and bytes/s per
//! operation, the average wait per completed request, the busy fraction
//! and the average queue. The first collection has no interval, so no
//! rates; a counter reset gives no rate that needs it.

use super::{EventTypes, Options};
use crate::config::ProbeConfig;
use crate::counter::{Bound, Counter, Observed, Width};
use crate::probe::track::Tracked;
use crate::probe::{Getter, Probe, ProbeError};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::procfs::diskstats::{self, DiskStat};
use crate::source::read::KernelFile;

/// diskstats sectors are 512 bytes whatever the device's sector size.
const SECTOR_BYTES: f64 = 512.0;

/// Far above any device: 16 M requests/s.
const REQUESTS: Bound = Bound::new(16.0 * 1024.0 * 1024.0, 1 << 16);
/// Far above any device: 64 GiB/s.
const SECTORS: Bound = Bound::new(128.0 * 1024.0 * 1024.0, 1 << 20);
/// Time with requests in flight advances with the clock (the kernel counts
/// it in jiffies: a few percent of rounding), plus the probe's own delay.
const IO_MS: Bound = Bound::new(1050.0, 2000);
/// Time summed over requests advances with the clock times the requests
/// in flight: up to 65536 of them.
const REQUEST_MS: Bound = Bound::new(65536.0 * 1000.0, 65536 * 2000);

/// How many bits the kernel keeps of a field.
#[derive(Clone, Copy)]
enum Kind {
    /// `unsigned long`: the kernel's word.
    Ulong,
    /// Printed as `unsigned int` on every architecture.
    Ms32,
}

/// The cumulative fields, in the order of the per-device counters.
const FIELDS: [(Getter<DiskStat>, Kind, Bound); 16] = [
    (|d| Some(d.reads), Kind::Ulong, REQUESTS),
    (|d| Some(d.writes), Kind::Ulong, REQUESTS),
    (|d| d.discards, Kind::Ulong, REQUESTS),
    (|d| d.flushes, Kind::Ulong, REQUESTS),
    (|d| d.reads_merged, Kind::Ulong, REQUESTS),
    (|d| d.writes_merged, Kind::Ulong, REQUESTS),
    (|d| d.discards_merged, Kind::Ulong, REQUESTS),
    (|d| Some(d.sectors_read), Kind::Ulong, SECTORS),
    (|d| Some(d.sectors_written), Kind::Ulong, SECTORS),
    (|d| d.sectors_discarded, Kind::Ulong, SECTORS),
    (|d| d.read_ms, Kind::Ms32, REQUEST_MS),
    (|d| d.write_ms, Kind::Ms32, REQUEST_MS),
    (|d| d.discard_ms, Kind::Ms32, REQUEST_MS),
    (|d| d.flush_ms, Kind::Ms32, REQUEST_MS),
    (|d| d.io_ms, Kind::Ms32, IO_MS),
    (|d| d.weighted_ms, Kind::Ms32, REQUEST_MS),
];
/// Index of the first requests, sectors and time field, and of io and
/// weighted time, in [`FIELDS`].
const REQ: usize = 0;
const SECT: usize = 7;
const TIME: usize = 10;
const IO: usize = 14;
const WEIGHTED: usize = 15;

/// The event type of each of [`FIELDS`].
fn field_types(t: &EventTypes) -> [Name; FIELDS.len()] {
    [
        &t.requests[0],
        &t.requests[1],
        &t.requests[2],
        &t.requests[3],
        &t.merged[0],
        &t.merged[1],
        &t.merged[2],
        &t.sectors[0],
        &t.sectors[1],
        &t.sectors[2],
        &t.time[0],
        &t.time[1],
        &t.time[2],
        &t.time[3],
        &t.io_time,
        &t.weighted_time,
    ]
    .map(Name::clone)
}

/// Per-interval rates of one device, computed from its counters' deltas.
/// `None` where a field is absent in this layout, was reset, or (for the
/// average wait) no request completed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// Requests completed per second: read, write, discard, flush.
    pub iops: [Option<f64>; 4],
    /// Bytes per second: read, write, discard.
    pub bytes: [Option<f64>; 3],
    /// Milliseconds per completed request: read, write, discard, flush.
    pub await_ms: [Option<f64>; 4],
    /// Fraction of the interval with requests in flight, 0..1.
    pub busy: Option<f64>,
    /// Average requests in flight.
    pub queue: Option<f64>,
}

impl Rates {
    /// Rates of an interval of `seconds` from the fields' observations.
    fn of(observed: &[Observed; FIELDS.len()], seconds: f64) -> Rates {
        let advance = |i: usize| observed[i].advance();
        let ms = seconds * 1000.0;
        Rates {
            iops: std::array::from_fn(|op| advance(REQ + op).map(|d| d as f64 / seconds)),
            bytes: std::array::from_fn(|op| {
                advance(SECT + op).map(|d| d as f64 * SECTOR_BYTES / seconds)
            }),
            await_ms: std::array::from_fn(|op| match (advance(TIME + op), advance(REQ + op)) {
                (Some(t), Some(n)) if n > 0 => Some(t as f64 / n as f64),
                _ => None,
            }),
            // io_ticks is counted in jiffies and read a little apart from
            // the clock: a busy device can show a hair over 100%.
            busy: advance(IO).map(|d| (d as f64 / ms).min(1.0)),
            queue: advance(WEIGHTED).map(|d| d as f64 / ms),
        }
    }
}

#[derive(Default)]
struct Device {
    counters: [Counter; FIELDS.len()],
}

/// Reads /proc/diskstats.
pub(super) struct DiskProbe {
    file: KernelFile,
    stats: Vec<DiskStat>,
    only: Option<Vec<String>>,
    devices: Tracked<Device>,
    ulong: Width,
    last_ts: Option<Timestamp>,
    types: EventTypes,
    field_types: [Name; FIELDS.len()],
}

impl DiskProbe {
    /// Its event types, for the eBPF variant to share.
    pub(super) fn types(&self) -> &EventTypes {
        &self.types
    }

    pub(super) fn new(config: &ProbeConfig, options: &Options) -> Self {
        let types = EventTypes::new();
        Self {
            file: KernelFile::new(&config.proc_dir, "diskstats"),
            stats: Vec::new(),
            only: options.devices.clone(),
            devices: Tracked::default(),
            ulong: Width::kernel_ulong(),
            last_ts: None,
            field_types: field_types(&types),
            types,
        }
    }

    fn push_rates(&self, ts: Timestamp, subject: &Name, r: &Rates, out: &mut Vec<Sample>) {
        let t = &self.types;
        let rates = (t.iops.iter().zip(r.iops))
            .chain(t.bytes.iter().zip(r.bytes))
            .chain(t.await_ms.iter().zip(r.await_ms))
            .chain([(&t.busy, r.busy), (&t.queue, r.queue)]);
        for (event_type, value) in rates {
            if let Some(v) = value {
                out.push(Sample::new(
                    ts,
                    subject,
                    event_type,
                    Value::Float(v),
                    Source::Proc,
                ));
            }
        }
    }
}

/// The /proc variant as a probe.
pub(super) fn build(config: &ProbeConfig, options: &Options) -> Box<dyn Probe> {
    Box::new(DiskProbe::new(config, options))
}

/// Devices that never saw I/O (unused loop and ram devices) are noise
/// unless asked for by name.
fn ever_used(d: &DiskStat) -> bool {
    d.reads != 0 || d.writes != 0 || d.discards.unwrap_or(0) != 0 || d.flushes.unwrap_or(0) != 0
}

impl Probe for DiskProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let stats = &mut self.stats;
        self.file.parse(|text| diskstats::parse_into(text, stats))?;
        let seconds = self.last_ts.map(|last| ts.seconds_since(last));
        self.last_ts = Some(ts);
        self.devices.begin();
        let mut position = 0;
        for d in &self.stats {
            let wanted = match &self.only {
                Some(only) => only.contains(&d.name),
                None => ever_used(d),
            };
            if !wanted {
                continue;
            }
            let (subject, device, _) = self
                .devices
                .get(position, &d.name, |name| Name::from(format!("disk:{name}")));
            position += 1;
            let mut observed = [Observed::default(); FIELDS.len()];
            for (i, (get, kind, bound)) in FIELDS.iter().enumerate() {
                let Some(value) = get(d) else {
                    // Not in this layout (or no longer: keep no stale base).
                    device.counters[i].clear();
                    continue;
                };
                let width = match kind {
                    Kind::Ulong => self.ulong,
                    Kind::Ms32 => Width::Bits32,
                };
                observed[i] = device.counters[i].observe(value, width, *bound, seconds);
                out.push(
                    Sample::new(
                        ts,
                        subject,
                        &self.field_types[i],
                        Value::Int(value),
                        Source::Proc,
                    )
                    .with_reset(observed[i].is_reset()),
                );
            }
            if let Some(n) = d.in_progress {
                out.push(Sample::new(
                    ts,
                    subject,
                    &self.types.in_progress,
                    Value::Int(n),
                    Source::Proc,
                ));
            }
            if let Some(s) = seconds.filter(|s| *s > 0.0) {
                let subject = subject.clone();
                self.push_rates(ts, &subject, &Rates::of(&observed, s), out);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::counter::Delta;
    use crate::probe::testing::{self, find, float, int};

    const ET: &str = "ps:tools:blipp:linux:disk:";

    fn two_reads(
        first: &str,
        second: &str,
        seconds: f64,
        options: serde_json::Value,
    ) -> (Vec<Sample>, Vec<Sample>) {
        let dir = tempfile::tempdir().unwrap();
        testing::write_tree(dir.path(), &[("diskstats", first)]);
        let mut probe = testing::build("disk", &options, dir.path());
        let a = testing::collect(&mut *probe, 100.0);
        testing::write_tree(dir.path(), &[("diskstats", second)]);
        let b = testing::collect(&mut *probe, 100.0 + seconds);
        (a, b)
    }

    /// Tokens of the `name` line of a diskstats text, as numbers.
    fn fields(text: &str, name: &str) -> Vec<u64> {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(name))
            .unwrap();
        line.split_whitespace()
            .skip(3)
            .map(|t| t.parse().unwrap())
            .collect()
    }

    #[test]
    fn twenty_token_layout_counters_and_rates() {
        let first = include_str!("../../source/procfs/fixtures/diskstats-6.18");
        // vda two seconds later: computed by hand from the kernel's columns.
        let second = first.replace(
            " 254       0 vda 225359 12108 14619890 360923 30354 86026 33896656 273960 0 31836 641091 18762 92 2714520 6133 1224 73",
            " 254       0 vda 225559 12110 14621890 361123 30454 86030 33906656 274460 3 32836 642891 18772 93 2714620 6233 1234 83",
        );
        let (a, b) = two_reads(first, &second, 2.0, json!({}));
        let counters = [
            "requests:read",
            "merged:read",
            "sectors:read",
            "time:read",
            "requests:write",
            "merged:write",
            "sectors:write",
            "time:write",
            "inprogress",
            "time:io",
            "time:weighted",
            "requests:discard",
            "merged:discard",
            "sectors:discard",
            "time:discard",
            "requests:flush",
            "time:flush",
        ];
        for (text, samples) in [(first, &a), (second.as_str(), &b)] {
            let want = fields(text, "vda");
            let got: Vec<u64> = counters
                .iter()
                .map(|c| int(samples, "disk:vda", &format!("{ET}{c}")))
                .collect();
            assert_eq!(got, want, "every field, as the kernel printed it");
        }
        assert!(
            a.iter().all(|s| matches!(s.value, Value::Int(_))),
            "no rates on the first read"
        );
        let rate = |q: &str| float(&b, "disk:vda", &format!("{ET}utilization:{q}"));
        assert_eq!(rate("iops:read"), 100.0);
        assert_eq!(rate("iops:write"), 50.0);
        assert_eq!(rate("iops:discard"), 5.0);
        assert_eq!(rate("iops:flush"), 5.0);
        assert_eq!(rate("bytes:read"), 2000.0 * 512.0 / 2.0);
        assert_eq!(rate("bytes:write"), 10_000.0 * 512.0 / 2.0);
        assert_eq!(rate("bytes:discard"), 100.0 * 512.0 / 2.0);
        assert_eq!(rate("await:read"), 1.0);
        assert_eq!(rate("await:write"), 5.0);
        assert_eq!(rate("await:discard"), 10.0);
        assert_eq!(rate("await:flush"), 1.0);
        assert_eq!(rate("busy"), 0.5);
        assert_eq!(rate("queue"), 0.9);
        // vda1 did no I/O in the interval: zero rates (measured), no await
        // (no request completed: unknown).
        assert_eq!(
            float(&b, "disk:vda1", &format!("{ET}utilization:iops:read")),
            0.0
        );
        assert!(find(&b, "disk:vda1", &format!("{ET}utilization:await:read")).is_none());
        // Never-used devices are left out; used ones are all there.
        let subjects: std::collections::BTreeSet<&str> = b.iter().map(|s| &*s.subject).collect();
        assert_eq!(
            subjects.into_iter().collect::<Vec<_>>(),
            ["disk:loop0", "disk:vda", "disk:vda1"]
        );
    }

    #[test]
    fn seven_token_partitions() {
        let first = include_str!("../../source/procfs/fixtures/diskstats-2.6.18");
        let second = first.replace(
            "   8    2 sda2 3416558 109908454 42888193 343109112",
            "   8    2 sda2 3416658 109909454 42888293 343110112",
        );
        let (a, b) = two_reads(first, &second, 4.0, json!({"devices": ["sda2", "ram0"]}));
        let q = |s: &[Sample], q: &str| int(s, "disk:sda2", &format!("{ET}{q}"));
        assert_eq!(
            [
                "requests:read",
                "sectors:read",
                "requests:write",
                "sectors:write"
            ]
            .map(|c| q(&a, c)),
            [3_416_558, 109_908_454, 42_888_193, 343_109_112]
        );
        let kinds: Vec<&str> = b
            .iter()
            .filter(|s| &*s.subject == "disk:sda2")
            .map(|s| s.event_type.trim_start_matches(ET))
            .collect();
        assert_eq!(
            kinds,
            [
                "requests:read",
                "requests:write",
                "sectors:read",
                "sectors:write",
                "utilization:iops:read",
                "utilization:iops:write",
                "utilization:bytes:read",
                "utilization:bytes:write"
            ],
            "only what the 7-token layout has"
        );
        assert_eq!(
            float(&b, "disk:sda2", &format!("{ET}utilization:iops:write")),
            25.0
        );
        assert_eq!(
            float(&b, "disk:sda2", &format!("{ET}utilization:bytes:read")),
            1000.0 * 512.0 / 4.0
        );
        assert!(
            find(&a, "disk:ram0", &format!("{ET}requests:read")).is_some(),
            "named devices are reported even unused"
        );
        assert!(
            find(&a, "disk:sda", &format!("{ET}requests:read")).is_none(),
            "only the named devices"
        );
    }

    #[test]
    fn millisecond_fields_wrap_at_32_bits() {
        // 4.4 fixture: sda's read_ms and weighted_ms sit just below 2^32.
        let first = include_str!("../../source/procfs/fixtures/diskstats-4.4");
        let second = first.replace(
            "   8       0 sda 8512430 1234 983479234 4294967000 120394 88 19283744 91234 2 3345112 4294960001",
            "   8       0 sda 8512530 1234 983480234 704 120394 88 19283744 91234 2 3346112 4705",
        );
        let (_, b) = two_reads(first, &second, 1.0, json!({"devices": ["sda"]}));
        let s = |q: &str| find(&b, "disk:sda", &format!("{ET}{q}")).unwrap();
        assert!(
            !s("time:read").reset && !s("time:weighted").reset,
            "a wrap is not a reset"
        );
        // (2^32 - 4294967000) + 704 = 1000 ms for 100 reads.
        assert_eq!(
            float(&b, "disk:sda", &format!("{ET}utilization:await:read")),
            10.0
        );
        assert_eq!(
            float(&b, "disk:sda", &format!("{ET}utilization:queue")),
            12.0
        );
        assert_eq!(float(&b, "disk:sda", &format!("{ET}utilization:busy")), 1.0);
    }

    #[test]
    fn reattached_device_is_a_reset_without_rates() {
        let first = include_str!("../../source/procfs/fixtures/diskstats-4.19");
        let second = first.replace(
            "   8       0 sda 25183 8091 1591810 13604 41772 52133 3072616 83620 0 33192 86284 1200 0 2458624 3112",
            "   8       0 sda 10 0 80 4 0 0 0 0 0 8 4 0 0 0 0",
        );
        let (_, b) = two_reads(first, &second, 5.0, json!({}));
        let s = |q: &str| find(&b, "disk:sda", &format!("{ET}{q}"));
        assert!(
            s("requests:read").unwrap().reset
                && s("sectors:read").unwrap().reset
                && s("time:io").unwrap().reset
        );
        assert_eq!(
            s("requests:read").unwrap().value,
            Value::Int(10),
            "the new value, as printed"
        );
        for r in [
            "iops:read",
            "bytes:read",
            "await:read",
            "busy",
            "queue",
            "iops:discard",
        ] {
            assert!(
                s(&format!("utilization:{r}")).is_none(),
                "no {r} across a reset"
            );
        }
        // Discards merged stayed at 0: that counter did not go back.
        assert!(!s("merged:discard").unwrap().reset);
        assert!(s("requests:discard").unwrap().reset);
    }

    fn observations() -> impl Strategy<Value = Vec<Option<Delta>>> {
        let d = prop_oneof![
            Just(None),
            Just(Some(Delta::Reset)),
            any::<u32>().prop_map(|v| Some(Delta::Advanced(u64::from(v)))),
            any::<u32>().prop_map(|v| Some(Delta::Wrapped(u64::from(v)))),
        ];
        prop::collection::vec(d, FIELDS.len())
    }

    proptest! {
        /// Whatever the counters did (advances, wraps, resets, absent
        /// fields), rates are finite and non-negative, and the busy
        /// fraction is at most 1.
        #[test]
        fn rates_are_never_negative_or_absurd(obs in observations(), seconds in 0.001f64..3600.0) {
            let mut observed = [Observed::default(); FIELDS.len()];
            for (o, d) in observed.iter_mut().zip(obs) {
                *o = Observed { delta: d };
            }
            let r = Rates::of(&observed, seconds);
            let all = r.iops.iter().chain(&r.bytes).chain(&r.await_ms).chain([&r.busy, &r.queue]);
            for v in all.flatten() {
                prop_assert!(v.is_finite() && *v >= 0.0, "{v}");
            }
            if let Some(b) = r.busy {
                prop_assert!(b <= 1.0);
            }
            for (i, o) in observed.iter().enumerate() {
                if o.is_reset() && i < 4 {
                    prop_assert!(r.iops[i].is_none());
                }
            }
        }
    }
}
