//! The agent's cost in the kernel, published by each eBPF probe for the
//! programs it attached: runs, nanoseconds spent running and runs the
//! kernel skipped, cumulative, subject `ebpf:<program>`.

use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::ebpf::ProgramHandle;

/// Event type prefix of the agent's own measurements.
pub const AGENT_PREFIX: &str = "ps:tools:blipp:agent:";

/// Run-time statistics of a probe's programs, as samples.
pub struct ProgramCosts {
    programs: Vec<(ProgramHandle, Name)>,
    runs: Name,
    run_time: Name,
    missed: Name,
    /// Whether the kernel counts at all (BPF stats enabled).
    enabled: bool,
}

impl ProgramCosts {
    /// The costs of `programs`; `enabled` is whether the kernel's run-time
    /// statistics are on (without them every figure would be a false 0).
    pub fn new(programs: Vec<ProgramHandle>, enabled: bool) -> Self {
        let name = |s: &str| Name::from(format!("{AGENT_PREFIX}ebpf:{s}"));
        Self {
            programs: programs
                .into_iter()
                .map(|p| {
                    let subject = Name::from(format!("ebpf:{}", p.name));
                    (p, subject)
                })
                .collect(),
            runs: name("runs"),
            run_time: name("run_time_ns"),
            missed: name("missed"),
            enabled,
        }
    }

    /// Appends the samples of every program. A program whose statistics
    /// cannot be read is logged and skipped.
    pub fn collect(&self, ts: Timestamp, out: &mut Vec<Sample>) {
        if !self.enabled {
            return;
        }
        for (p, subject) in &self.programs {
            match p.stats() {
                Ok(s) => {
                    let mut push = |t: &Name, v: u64| {
                        out.push(Sample::new(ts, subject, t, Value::Int(v), Source::Ebpf));
                    };
                    push(&self.runs, s.runs);
                    push(&self.run_time, s.run_time_ns);
                    if let Some(m) = s.missed {
                        push(&self.missed, m);
                    }
                }
                Err(e) => tracing::debug!(program = p.name, error = %e, "no run-time statistics"),
            }
        }
    }
}
