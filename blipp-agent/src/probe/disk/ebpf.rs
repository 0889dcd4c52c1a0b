//! The eBPF variant: host-wide completed requests and sectors per
//! operation, counted by the `block_rq_complete` program, next to the
//! per-device numbers of the /proc variant.

use blipp_common::disk::{DISK_OPS, DiskCounters};

use super::{EventTypes, Options, proc};
use crate::config::ProbeConfig;
use crate::probe::{BuildContext, Probe, ProbeError};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::ebpf::disk::DiskOpTotals;

struct EbpfDiskProbe {
    /// Per-device counters still come from /proc/diskstats.
    proc: proc::DiskProbe,
    totals: DiskOpTotals,
    read: [DiskCounters; DISK_OPS as usize],
    node: Name,
    types: EventTypes,
}

/// Attaches the program; fails (and the caller falls back) when the
/// kernel does not allow it.
pub(super) fn build(
    config: &ProbeConfig,
    options: &Options,
    ctx: &mut BuildContext<'_>,
) -> Result<Box<dyn Probe>, ProbeError> {
    let kernel = ctx.kernel.get().map_err(ProbeError::EbpfUnavailable)?;
    let totals = DiskOpTotals::attach(kernel)?;
    Ok(Box::new(EbpfDiskProbe {
        proc: proc::DiskProbe::new(config, options),
        totals,
        read: [DiskCounters::default(); DISK_OPS as usize],
        node: ctx.node.clone(),
        types: EventTypes::new(),
    }))
}

impl Probe for EbpfDiskProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        self.proc.collect(ts, out)?;
        self.totals.read(&mut self.read)?;
        for ((requests, sectors), c) in self
            .types
            .requests
            .iter()
            .zip(&self.types.sectors)
            .zip(&self.read)
        {
            out.push(Sample::new(
                ts,
                &self.node,
                requests,
                Value::Int(c.requests),
                Source::Ebpf,
            ));
            out.push(Sample::new(
                ts,
                &self.node,
                sectors,
                Value::Int(c.sectors),
                Source::Ebpf,
            ));
        }
        Ok(())
    }
}
