//! CPU utilization per state (fractions of the interval, 0..1) and load
//! averages, from /proc/stat and /proc/loadavg. No eBPF variant: the kernel
//! already keeps these counters, reading them is the cheapest way.

use serde::Deserialize;

use super::{BuildContext, Built, Fallback, Getter, Probe, ProbeError, ProbeSpec};
use crate::config::ProbeConfig;
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::procfs::{loadavg, stat};
use crate::source::read::KernelFile;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "cpu",
    summary: "CPU utilization fractions per state, load averages (/proc/stat, /proc/loadavg)",
    fallback: Fallback::ProcOnly,
    build,
};

const PREFIX: &str = "ps:tools:blipp:linux:cpu:";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Also report every CPU, as subject `cpu:<n>`.
    #[serde(default)]
    percpu: bool,
}

/// Event types of the fractions, in `STATES` order.
struct EventTypes {
    states: [Name; STATES.len()],
    load: [Name; 3],
}

/// The original's state names, and how to read each from the counters.
const STATES: [(&str, Getter<stat::CpuTimes>); 9] = [
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

struct CpuProbe {
    stat_file: KernelFile,
    loadavg_file: KernelFile,
    stat: stat::Stat,
    prev_all: stat::CpuTimes,
    prev_cpus: Vec<Option<stat::CpuTimes>>,
    percpu: bool,
    node: Name,
    cpu_subjects: Vec<Name>,
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
            prev_all: stat::CpuTimes::default(),
            prev_cpus: Vec::new(),
            percpu: options.percpu,
            node: ctx.node.clone(),
            cpu_subjects: Vec::new(),
            types: EventTypes {
                states: STATES.map(|(s, _)| name(&format!("utilization:{s}"))),
                load: ["onemin", "fivemin", "fifteenmin"].map(|s| name(&format!("load:{s}"))),
            },
        }),
        source: Source::Proc,
    })
}

/// Fractions of the interval between `prev` and `cur` spent in each state,
/// `None` for states this kernel does not count. A counter that went
/// backwards (CPU hotplug, steal reset) counts as no time, so no fraction
/// is ever negative or above 1; an interval with no ticks gives nothing.
pub fn fractions(
    prev: &stat::CpuTimes,
    cur: &stat::CpuTimes,
) -> Option<[Option<f64>; STATES.len()]> {
    let deltas = STATES.map(|(_, get)| get(cur).map(|c| c.saturating_sub(get(prev).unwrap_or(0))));
    // guest is part of user: not added to the total.
    let total: u64 = deltas[..8].iter().flatten().sum();
    if total == 0 {
        return None;
    }
    Some(deltas.map(|d| d.map(|d| (d as f64 / total as f64).min(1.0))))
}

impl CpuProbe {
    fn push_fractions(
        &self,
        ts: Timestamp,
        subject: &Name,
        f: [Option<f64>; STATES.len()],
        out: &mut Vec<Sample>,
    ) {
        for (event_type, value) in self.types.states.iter().zip(f) {
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

impl Probe for CpuProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let mut parsed = std::mem::take(&mut self.stat);
        self.stat_file
            .parse(|text| stat::parse_into(text, &mut parsed))?;
        // The first collection reports utilization since boot, as the
        // original did; later ones report the interval.
        if let Some(f) = fractions(&self.prev_all, &parsed.all) {
            self.push_fractions(ts, &self.node, f, out);
        }
        self.prev_all = parsed.all;
        if self.percpu {
            for &(n, times) in &parsed.cpus {
                let n = n as usize;
                if self.prev_cpus.len() <= n {
                    self.prev_cpus.resize(n + 1, None);
                    self.cpu_subjects = (0..=n).map(|i| Name::from(format!("cpu:{i}"))).collect();
                }
                let prev = self.prev_cpus[n].unwrap_or_default();
                if let Some(f) = fractions(&prev, &times) {
                    self.push_fractions(ts, &self.cpu_subjects[n], f, out);
                }
                self.prev_cpus[n] = Some(times);
            }
        }
        self.stat = parsed;

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
    use super::*;

    #[test]
    fn bounded_fractions() {
        let mut s = stat::Stat::default();
        stat::parse_into(
            "cpu  3579530 297982 559622 300054967 35610 5109 20004 0 0\n",
            &mut s,
        )
        .unwrap();
        let f = fractions(&stat::CpuTimes::default(), &s.all).unwrap();
        let sum: f64 = f[..8].iter().flatten().sum();
        assert!(
            (sum - 1.0).abs() < 1e-9,
            "first read covers everything since boot: {sum}"
        );
        assert!(
            fractions(&s.all, &s.all).is_none(),
            "no ticks, no fractions"
        );
        let mut back = s.all;
        back.idle -= 1000;
        back.user += 10;
        let f = fractions(&s.all, &back).unwrap();
        assert_eq!(f[0], Some(1.0));
        assert!(f.iter().flatten().all(|v| (0.0..=1.0).contains(v)));
    }
}
