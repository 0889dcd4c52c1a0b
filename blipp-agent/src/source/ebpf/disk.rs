//! User side of the block-request program.

use std::path::Path;

use aya::maps::{MapData, PerCpuArray};
use blipp_common::disk::{DISK_OPS, DiskCounters, RqCompleteLayout};

use super::{EbpfError, Kernel, tracefs};

const TRACEPOINT: &str = "block/block_rq_complete";

/// Reads this kernel's `block_rq_complete` layout.
pub fn rq_complete_layout(root: &Path) -> Result<RqCompleteLayout, EbpfError> {
    let fields = tracefs::format(root, "block", "block_rq_complete")?;
    Ok(RqCompleteLayout {
        dev: tracefs::field(&fields, TRACEPOINT, "dev", 4)?.offset,
        nr_sector: tracefs::field(&fields, TRACEPOINT, "nr_sector", 4)?.offset,
        rwbs: tracefs::field(&fields, TRACEPOINT, "rwbs", 4)?.offset,
        valid: 1,
    })
}

/// Host-wide completed requests and sectors per operation class.
pub struct DiskOpTotals {
    map: PerCpuArray<MapData, DiskCounters>,
}

impl DiskOpTotals {
    /// Attaches the program and takes its map.
    pub fn attach(kernel: &mut Kernel) -> Result<Self, EbpfError> {
        kernel.rq_complete_ok()?;
        kernel.attach_tracepoint("block_rq_complete", "block", "block_rq_complete")?;
        let map = kernel.take_map("DISK_OP_TOTALS")?;
        let map = PerCpuArray::try_from(map).map_err(|e| EbpfError::Map {
            map: "DISK_OP_TOTALS",
            source: Box::new(e),
        })?;
        Ok(Self { map })
    }

    /// Sums the per-CPU slots of every operation into `out`.
    pub fn read(&self, out: &mut [DiskCounters; DISK_OPS as usize]) -> Result<(), EbpfError> {
        for (op, slot) in (0..DISK_OPS).zip(out.iter_mut()) {
            let values = self.map.get(&op, 0).map_err(|e| EbpfError::Map {
                map: "DISK_OP_TOTALS",
                source: Box::new(e),
            })?;
            *slot = values
                .iter()
                .fold(DiskCounters::default(), |acc, v| DiskCounters {
                    requests: acc.requests.wrapping_add(v.requests),
                    sectors: acc.sectors.wrapping_add(v.sectors),
                });
        }
        Ok(())
    }
}
