//! The agent's own cost, gathered while it runs and published by the
//! `agent` probe: how long each probe's last collection took (measured by
//! the arbiter), and what each eBPF program cost in the kernel (runs,
//! nanoseconds spent running, runs the kernel skipped; from the kernel's
//! BPF run-time statistics, registered by the probes that attached them).
//! Runs and run time only while the statistics are on (an `agent` probe
//! with `ebpf_run_time`); skipped runs always (5.12+).
//! All are `source: proc`: the agent reads them from the kernel, no program
//! of its own counts them.

use std::sync::{Arc, Mutex, PoisonError};

use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::ebpf::ProgramHandle;

/// Event type prefix of the agent's own measurements.
pub const AGENT_PREFIX: &str = "ps:tools:blipp:agent:";

#[derive(Default)]
struct Board {
    /// `probe:<name>`, the duration of its last collection, in seconds.
    durations: Vec<(Name, f64)>,
    /// Attached programs and their subjects `ebpf:<program>`.
    programs: Vec<(ProgramHandle, Name)>,
    /// Whether the kernel's run-time statistics are on.
    stats_enabled: bool,
    /// `probe:<name>` of the probes the configuration wants that could
    /// not be built.
    failed: Vec<Name>,
}

/// Shared between the arbiter, the probes that attach programs, and the
/// `agent` probe. Cloning shares it.
#[derive(Clone, Default)]
pub struct CostBoard(Arc<Mutex<Board>>);

impl CostBoard {
    fn with<T>(&self, f: impl FnOnce(&mut Board) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Registers programs a probe attached; `stats_enabled` is whether the
    /// kernel counts their runs and run time (without it those figures
    /// would be a false 0, so they are not published; skipped runs are
    /// counted either way).
    pub fn add_programs(&self, programs: Vec<ProgramHandle>, stats_enabled: bool) {
        self.with(|b| {
            b.stats_enabled = stats_enabled;
            for p in programs {
                if !b.programs.iter().any(|(q, _)| q.name == p.name) {
                    let subject = Name::from(format!("ebpf:{}", p.name));
                    b.programs.push((p, subject));
                }
            }
        });
    }

    /// Sets the probes that the configuration wants and that could not be
    /// built (subjects `probe:<name>`).
    pub fn set_failed(&self, probes: Vec<Name>) {
        self.with(|b| b.failed = probes);
    }

    /// Records how long `probe`'s collection took.
    pub fn record(&self, probe: &Name, seconds: f64) {
        self.with(|b| match b.durations.iter_mut().find(|(p, _)| p == probe) {
            Some((_, d)) => *d = seconds,
            None => b.durations.push((probe.clone(), seconds)),
        });
    }
}

/// The `agent` probe's event types, interned once.
pub struct CostTypes {
    collect: Name,
    failed: Name,
    failed_count: Name,
    runs: Name,
    run_time: Name,
    missed: Name,
}

impl CostTypes {
    /// Interns them.
    pub fn new() -> Self {
        let name = |s: &str| Name::from(format!("{AGENT_PREFIX}{s}"));
        Self {
            collect: name("probe:collect_seconds"),
            failed: name("probe:failed"),
            failed_count: name("probes:failed"),
            runs: name("ebpf:runs"),
            run_time: name("ebpf:run_time_ns"),
            missed: name("ebpf:missed"),
        }
    }
}

impl Default for CostTypes {
    fn default() -> Self {
        Self::new()
    }
}

impl CostBoard {
    /// Appends what the board holds as samples, the count of probes that
    /// could not be built as `node`'s. A program whose statistics cannot
    /// be read is logged and skipped.
    pub fn collect(&self, ts: Timestamp, t: &CostTypes, node: &Name, out: &mut Vec<Sample>) {
        self.with(|b| {
            out.push(Sample::new(
                ts,
                node,
                &t.failed_count,
                Value::Int(b.failed.len() as u64),
                Source::Proc,
            ));
            for probe in &b.failed {
                out.push(Sample::new(
                    ts,
                    probe,
                    &t.failed,
                    Value::Int(1),
                    Source::Proc,
                ));
            }
            for (probe, seconds) in &b.durations {
                out.push(Sample::new(
                    ts,
                    probe,
                    &t.collect,
                    Value::Float(*seconds),
                    Source::Proc,
                ));
            }
            for (p, subject) in &b.programs {
                match p.stats() {
                    Ok(s) => {
                        let mut push = |et: &Name, v: u64| {
                            out.push(Sample::new(ts, subject, et, Value::Int(v), Source::Proc));
                        };
                        if b.stats_enabled {
                            push(&t.runs, s.runs);
                            push(&t.run_time, s.run_time_ns);
                        }
                        if let Some(m) = s.missed {
                            push(&t.missed, m);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(program = p.name, error = %e, "no run-time statistics");
                    }
                }
            }
        });
    }
}
