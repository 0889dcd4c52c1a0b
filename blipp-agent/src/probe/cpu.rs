//! CPU utilization per state (fractions of the interval, 0..1) and load
//! averages, from /proc/stat and /proc/loadavg. No eBPF variant: the kernel
//! already keeps these counters, reading them is the cheapest way.
//!
//! # Intervals, resets and "no time passed"
//!
//! A fraction is `ticks in the state / ticks in all states` over the
//! interval between two reads (the first read covers the time since boot,
//! as in the original BLiPP). `guest` time is already inside `user`, so it
//! is not added to the total again (the original added it, which made
//! its fractions sum to less than 1 on hosts running guests).
//!
//! The tick counters are 64-bit and never wrap, yet they do go backwards:
//! when a CPU goes offline its idle time switches from the nohz clock to
//! the tick count, and some hypervisors reset steal time. Such an interval
//! (or one advancing faster than `USER_HZ` per online CPU allows, see
//! [`crate::counter`]) has no trustworthy denominator, so no fraction is
//! reported for it; the next interval starts from the new values. Every
//! reported fraction is therefore in 0..1, and the states sum to 1.
//!
//! An interval with no ticks at all is unknown, not idle: the pure
//! computation says so (every state advanced 0 of 0 ticks, which the
//! original printed as 0.0 for every state) and the probe emits no
//! utilization for it.

use serde::Deserialize;

use super::{BuildContext, Built, Fallback, Getter, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::ProbeConfig;
use crate::counter::{Bound, Delta, Width, delta};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::procfs::{loadavg, stat};
use crate::source::read::KernelFile;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "cpu",
    summary: "CPU utilization fractions per state, load averages (/proc/stat, /proc/loadavg)",
    fallback: Fallback::Only(Source::Proc),
    programs: &[],
    reach: Reach::NONE,
    build,
    options: crate::config::option_keys::<Options>,
};

const PREFIX: &str = "ps:tools:blipp:linux:cpu:";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Also report every CPU, as subject `cpu:<n>`.
    #[serde(default)]
    percpu: bool,
}

/// The original's state names, and how to read each from the counters.
/// The first [`COUNTED`] make up the total; `guest` is part of `user`.
pub const STATES: [(&str, Getter<stat::CpuTimes>); 9] = [
    ("user", |t| Some(t.user)),
    ("system", |t| Some(t.system)),
    ("nice", |t| Some(t.nice)),
    ("idle", |t| Some(t.idle)),
    ("iowait", |t| t.iowait),
    ("hwirq", |t| t.irq),
    ("swirq", |t| t.softirq),
    ("steal", |t| t.steal),
    ("guest", |t| t.guest),
];

/// How many of [`STATES`] are disjoint and add up to all CPU time.
pub const COUNTED: usize = 8;
const USER: usize = 0;
const GUEST: usize = 8;

/// How fast CPU time can pass on one CPU, in `USER_HZ` ticks: the clock
/// itself, with room for the probe reading the file a little later than
/// its timestamp says.
fn ticks_bound(hz: u64, cpus: usize) -> Bound {
    let cpus = cpus.max(1) as f64;
    let hz = hz as f64;
    Bound::new(hz * 1.25 * cpus, (2.0 * hz * cpus) as u64)
}

/// Ticks each state advanced over one interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Per state of [`STATES`]; `None` where this kernel has no column.
    pub ticks: [Option<u64>; STATES.len()],
    /// All CPU time that passed: the sum of the first [`COUNTED`] states.
    pub total: u64,
}

impl Interval {
    /// Ticks from `prev` to `cur` (`prev` `None`: since boot), or `None`
    /// when a counter went backwards or the total exceeds `max_ticks`:
    /// such an interval cannot be split into fractions.
    pub fn between(
        prev: Option<&stat::CpuTimes>,
        cur: &stat::CpuTimes,
        max_ticks: u64,
    ) -> Option<Interval> {
        let mut ticks = [None; STATES.len()];
        for (slot, (_, get)) in ticks.iter_mut().zip(STATES) {
            let Some(now) = get(cur) else { continue };
            *slot = match prev.map(get) {
                None => Some(now),
                // The column was not there before: nothing to compare with.
                Some(None) => None,
                Some(Some(before)) => match delta(before, now, Width::Bits64, max_ticks) {
                    Delta::Advanced(d) | Delta::Wrapped(d) => Some(d),
                    Delta::Reset => return None,
                },
            };
        }
        let total = ticks[..COUNTED]
            .iter()
            .flatten()
            .try_fold(0u64, |sum, &t| sum.checked_add(t))?;
        if total > max_ticks {
            return None;
        }
        // guest is counted inside user; more guest than user is not a
        // reading of one moment, so that one state is unknown.
        if let (Some(g), Some(u)) = (ticks[GUEST], ticks[USER])
            && g > u
        {
            ticks[GUEST] = None;
        }
        Some(Interval { ticks, total })
    }

    /// Each state's share of the interval, or `None` when no time passed
    /// (unknown, not zero).
    pub fn fractions(&self) -> Option<[Option<f64>; STATES.len()]> {
        if self.total == 0 {
            return None;
        }
        let total = self.total as f64;
        Some(self.ticks.map(|t| t.map(|t| t as f64 / total)))
    }
}

/// Event types, interned once.
struct EventTypes {
    states: [Name; STATES.len()],
    load: [Name; 3],
}

struct CpuProbe {
    stat_file: KernelFile,
    loadavg_file: KernelFile,
    stat: stat::Stat,
    prev_all: Option<stat::CpuTimes>,
    prev_online: usize,
    /// Per CPU number: its last reading, `None` while it is offline.
    prev_cpus: Vec<Option<stat::CpuTimes>>,
    seen: Vec<bool>,
    cpu_subjects: Vec<Name>,
    percpu: bool,
    hz: u64,
    last_ts: Option<Timestamp>,
    node: Name,
    types: EventTypes,
}

fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    let name = |s: &str| Name::from(format!("{PREFIX}{s}"));
    Ok(Built {
        probe: Box::new(CpuProbe {
            stat_file: KernelFile::new(&config.proc_dir, "stat"),
            loadavg_file: KernelFile::new(&config.proc_dir, "loadavg"),
            stat: stat::Stat::default(),
            prev_all: None,
            prev_online: 0,
            prev_cpus: Vec::new(),
            seen: Vec::new(),
            cpu_subjects: Vec::new(),
            percpu: options.percpu,
            hz: crate::host::clock_ticks_per_second(),
            last_ts: None,
            node: ctx.node.clone(),
            types: EventTypes {
                states: STATES.map(|(s, _)| name(&format!("utilization:{s}"))),
                load: ["onemin", "fivemin", "fifteenmin"].map(|s| name(&format!("load:{s}"))),
            },
        }),
        source: Source::Proc,
    })
}

impl CpuProbe {
    fn push_interval(
        types: &EventTypes,
        ts: Timestamp,
        subject: &Name,
        interval: Option<Interval>,
        out: &mut Vec<Sample>,
    ) {
        let Some(interval) = interval else {
            tracing::debug!(%subject, "CPU time went backwards (hotplug, steal reset) or jumped; no utilization this interval");
            return;
        };
        let Some(fractions) = interval.fractions() else {
            return;
        };
        for (event_type, value) in types.states.iter().zip(fractions) {
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

    fn per_cpu(&mut self, ts: Timestamp, seconds: Option<f64>, out: &mut Vec<Sample>) {
        self.seen.iter_mut().for_each(|s| *s = false);
        for &(n, times) in &self.stat.cpus {
            let n = n as usize;
            if self.prev_cpus.len() <= n {
                self.prev_cpus.resize(n + 1, None);
                self.seen.resize(n + 1, false);
                let have = self.cpu_subjects.len();
                self.cpu_subjects
                    .extend((have..=n).map(|i| Name::from(format!("cpu:{i}"))));
            }
            self.seen[n] = true;
            let prev = self.prev_cpus[n].replace(times);
            match (seconds, prev) {
                // First collection: since boot, like the aggregate.
                (None, _) => {
                    let interval = Interval::between(None, &times, u64::MAX);
                    Self::push_interval(&self.types, ts, &self.cpu_subjects[n], interval, out);
                }
                (Some(s), Some(prev)) => {
                    let max = ticks_bound(self.hz, 1).over(s);
                    let interval = Interval::between(Some(&prev), &times, max);
                    Self::push_interval(&self.types, ts, &self.cpu_subjects[n], interval, out);
                }
                // Came online since the last read: this read is its base.
                (Some(_), None) => {}
            }
        }
        for (prev, seen) in self.prev_cpus.iter_mut().zip(&self.seen) {
            if !seen {
                *prev = None;
            }
        }
    }
}

impl Probe for CpuProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let parsed = &mut self.stat;
        self.stat_file
            .parse(|text| stat::parse_into(text, parsed))?;
        let seconds = self.last_ts.map(|last| ts.seconds_since(last));
        self.last_ts = Some(ts);
        let online = self.stat.cpus.len();
        let max = match seconds {
            Some(s) => ticks_bound(self.hz, online.max(self.prev_online)).over(s),
            None => u64::MAX,
        };
        let all = self.stat.all;
        let interval = Interval::between(self.prev_all.as_ref(), &all, max);
        Self::push_interval(&self.types, ts, &self.node, interval, out);
        self.prev_all = Some(all);
        self.prev_online = online;
        if self.percpu {
            self.per_cpu(ts, seconds, out);
        }

        let l = self.loadavg_file.parse(loadavg::parse)?;
        for (event_type, v) in self.types.load.iter().zip([l.one, l.five, l.fifteen]) {
            out.push(Sample::new(
                ts,
                &self.node,
                event_type,
                Value::Float(v),
                Source::Proc,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::probe::testing::{self, float};

    const GOLDEN: &str = include_str!("../source/procfs/fixtures/original/stat");

    fn times(text: &str) -> stat::CpuTimes {
        let mut s = stat::Stat::default();
        stat::parse_into(text, &mut s).unwrap();
        s.all
    }

    fn utilization(samples: &[Sample], subject: &str) -> Vec<(String, f64)> {
        samples
            .iter()
            .filter(|s| &*s.subject == subject && s.event_type.contains(":utilization:"))
            .map(|s| match s.value {
                Value::Float(v) => (s.event_type.rsplit(':').next().unwrap().to_owned(), v),
                ref v => panic!("{v:?}"),
            })
            .collect()
    }

    /// The original BLiPP's test_cpu.py: the first read of
    /// `cpu  3579530 297982 559622 300054967 35610 5109 20004 0 0` gives
    /// fractions summing to 1.0; a second identical read gives 0.0 for
    /// every state.
    #[test]
    fn original_blipp_vector_pure() {
        let cur = times(GOLDEN);
        let first = Interval::between(None, &cur, u64::MAX).unwrap();
        let f = first.fractions().unwrap();
        let sum: f64 = f.iter().flatten().sum();
        assert!((sum - 1.0).abs() < 1e-12, "sum {sum}");
        let total =
            3_579_530.0 + 297_982.0 + 559_622.0 + 300_054_967.0 + 35_610.0 + 5109.0 + 20_004.0;
        assert_eq!(f[0], Some(3_579_530.0 / total), "user");
        assert_eq!(f[3], Some(300_054_967.0 / total), "idle");
        assert_eq!(
            (f[7], f[8]),
            (Some(0.0), Some(0.0)),
            "steal and guest measured as 0"
        );
        // The second identical read: every state advanced 0 of 0 ticks,
        // which the original printed as 0.0 ...
        let second = Interval::between(Some(&cur), &cur, 1000).unwrap();
        assert_eq!(second.total, 0);
        assert!(second.ticks.iter().all(|t| *t == Some(0)), "{second:?}");
        // ... and blipp reports as unknown rather than a fake idle-less 0.
        assert_eq!(second.fractions(), None);
    }

    #[test]
    fn original_blipp_vector_probe() {
        let dir = tempfile::tempdir().unwrap();
        testing::write_tree(
            dir.path(),
            &[("stat", GOLDEN), ("loadavg", "0.20 0.18 0.12 1/80 11206\n")],
        );
        let mut probe = testing::build("cpu", &json!({}), dir.path());
        let first = testing::collect(&mut *probe, 0.0);
        let u = utilization(&first, "node");
        assert_eq!(u.len(), 9, "{u:?}");
        assert!((u.iter().map(|(_, v)| v).sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(
            float(&first, "node", "ps:tools:blipp:linux:cpu:load:onemin"),
            0.20
        );
        assert_eq!(
            float(&first, "node", "ps:tools:blipp:linux:cpu:load:fifteenmin"),
            0.12
        );
        let second = testing::collect(&mut *probe, 5.0);
        assert_eq!(utilization(&second, "node"), [], "no ticks: no utilization");
        assert_eq!(second.len(), 3, "only the load averages: {second:?}");
    }

    #[test]
    fn columns_by_kernel_age() {
        let fixtures = [
            (include_str!("../source/procfs/fixtures/stat-2.4-4col"), 4),
            (include_str!("../source/procfs/fixtures/stat-2.6.9-7col"), 7),
            (
                include_str!("../source/procfs/fixtures/stat-2.6.18-8col"),
                8,
            ),
            (
                include_str!("../source/procfs/fixtures/stat-2.6.24-9col"),
                9,
            ),
            (include_str!("../source/procfs/fixtures/stat-6.18-10col"), 9),
        ];
        for (text, states) in fixtures {
            let f = Interval::between(None, &times(text), u64::MAX)
                .unwrap()
                .fractions()
                .unwrap();
            assert_eq!(f.iter().flatten().count(), states, "{text}");
            let sum: f64 = f[..COUNTED].iter().flatten().sum();
            assert!((sum - 1.0).abs() < 1e-12, "{sum}");
        }
        // guest inside user: 1402 of 416325 ticks on the 6.18 fixture.
        let f = Interval::between(
            None,
            &times(include_str!("../source/procfs/fixtures/stat-6.18-10col")),
            u64::MAX,
        )
        .unwrap()
        .fractions()
        .unwrap();
        let total = 192_883.0 + 27_675.0 + 194_286.0 + 1199.0 + 193.0 + 89.0;
        assert_eq!(f[GUEST], Some(1402.0 / total));
    }

    #[test]
    fn backwards_counters_give_no_interval() {
        let a = times("cpu  100 0 50 1000 10 0 5 20 0 0\n");
        // Idle went back (a CPU went offline): no fractions.
        let b = times("cpu  110 0 55 990 10 0 5 20 0 0\n");
        assert_eq!(Interval::between(Some(&a), &b, 10_000), None);
        // Steal reset to 0.
        let c = times("cpu  110 0 55 1100 10 0 5 0 0 0\n");
        assert_eq!(Interval::between(Some(&a), &c, 10_000), None);
        // A jump beyond what the clock allows.
        let d = times("cpu  100 0 50 1000 10 0 5 900000 0 0\n");
        assert_eq!(Interval::between(Some(&a), &d, 10_000), None);
        // More guest than user in one interval: guest unknown, rest fine.
        let e = times("cpu  101 0 50 1009 10 0 5 20 5 0\n");
        let i = Interval::between(Some(&a), &e, 10_000).unwrap();
        assert_eq!((i.ticks[GUEST], i.total), (None, 10));
    }

    #[test]
    fn percpu_hotplug() {
        let dir = tempfile::tempdir().unwrap();
        let write = |stat: &str| {
            testing::write_tree(dir.path(), &[("stat", stat), ("loadavg", "1 1 1 1/1 1\n")])
        };
        write(
            "cpu  200 0 0 200 0 0 0 0 0 0\ncpu0 100 0 0 100 0 0 0 0 0 0\ncpu1 100 0 0 100 0 0 0 0 0 0\n",
        );
        let mut probe = testing::build("cpu", &json!({"percpu": true}), dir.path());
        let s = testing::collect(&mut *probe, 0.0);
        assert_eq!(
            float(&s, "cpu:1", "ps:tools:blipp:linux:cpu:utilization:user"),
            0.5
        );
        // cpu1 goes offline: its idle falls back to the tick count, the
        // aggregate's idle goes backwards.
        write("cpu  350 0 0 190 0 0 0 0 0 0\ncpu0 250 0 0 100 0 0 0 0 0 0\n");
        let s = testing::collect(&mut *probe, 2.0);
        assert!(
            utilization(&s, "node").is_empty(),
            "aggregate went backwards"
        );
        assert_eq!(
            float(&s, "cpu:0", "ps:tools:blipp:linux:cpu:utilization:user"),
            1.0
        );
        assert!(utilization(&s, "cpu:1").is_empty());
        // cpu1 is back: its first interval only sets the base.
        write(
            "cpu  450 0 0 290 0 0 0 0 0 0\ncpu0 300 0 0 150 0 0 0 0 0 0\ncpu1 150 0 0 140 0 0 0 0 0 0\n",
        );
        let s = testing::collect(&mut *probe, 3.0);
        assert_eq!(
            float(&s, "node", "ps:tools:blipp:linux:cpu:utilization:idle"),
            0.5
        );
        assert_eq!(
            float(&s, "cpu:0", "ps:tools:blipp:linux:cpu:utilization:idle"),
            0.5
        );
        assert!(utilization(&s, "cpu:1").is_empty());
        write(
            "cpu  470 0 0 330 0 0 0 0 0 0\ncpu0 310 0 0 170 0 0 0 0 0 0\ncpu1 160 0 0 160 0 0 0 0 0 0\n",
        );
        let s = testing::collect(&mut *probe, 3.5);
        assert_eq!(
            float(&s, "cpu:1", "ps:tools:blipp:linux:cpu:utilization:idle"),
            2.0 / 3.0
        );
    }

    fn cpu_times() -> impl Strategy<Value = stat::CpuTimes> {
        (prop::array::uniform10(0u64..1_000_000), 4usize..=10).prop_map(|(v, columns)| {
            let opt = |i: usize| (i < columns).then_some(v[i]);
            stat::CpuTimes {
                user: v[0],
                nice: v[1],
                system: v[2],
                idle: v[3],
                iowait: opt(4),
                irq: opt(5),
                softirq: opt(6),
                steal: opt(7),
                guest: opt(8),
                guest_nice: opt(9),
            }
        })
    }

    proptest! {
        /// Any two readings, in any order (counters forwards, backwards,
        /// columns appearing): every fraction is in 0..1 and the counted
        /// states sum to 1.
        #[test]
        fn fractions_always_bounded(a in cpu_times(), b in cpu_times(), max in prop_oneof![Just(u64::MAX), 0u64..3_000_000]) {
            if let Some(f) = Interval::between(Some(&a), &b, max).and_then(|i| i.fractions()) {
                for v in f.iter().flatten() {
                    prop_assert!((0.0..=1.0).contains(v), "{v}");
                }
                let sum: f64 = f[..COUNTED].iter().flatten().sum();
                prop_assert!((sum - 1.0).abs() < 1e-9, "{sum}");
            }
        }
    }
}
