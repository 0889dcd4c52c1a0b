//! The agent's own cost: how long each probe's last collection took
//! (subject `probe:<name>`) and, per eBPF program (subject
//! `ebpf:<program>`), its runs, run time and skipped runs from the kernel's
//! BPF run-time statistics. Event types start with `ps:tools:blipp:agent:`.

use super::cost::{CostBoard, CostTypes};
use super::{BuildContext, Built, Fallback, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::ProbeConfig;
use crate::sample::{Sample, Source, Timestamp};

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "agent",
    summary: "blippd's own cost: collection time per probe; runs and kernel run time per eBPF program (BPF run-time statistics)",
    fallback: Fallback::ProcOnly,
    reach: Reach::NONE,
    build,
};

struct AgentProbe {
    board: CostBoard,
    types: CostTypes,
}

fn build(_config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    Ok(Built {
        probe: Box::new(AgentProbe {
            board: ctx.costs.clone(),
            types: CostTypes::new(),
        }),
        source: Source::Proc,
    })
}

impl Probe for AgentProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        self.board.collect(ts, &self.types, out);
        Ok(())
    }
}
