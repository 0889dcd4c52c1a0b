//! Block request completions, counted per operation class.
//!
//! Attached to `block/block_rq_complete`, which every kernel since 2.6.x has.
//! Field offsets come from the agent (they moved between kernels), via
//! [`RQ_COMPLETE_LAYOUT`].

use crate::atomic;
use aya_ebpf::{
    macros::{map, tracepoint},
    maps::PerCpuArray,
    programs::TracePointContext,
};
use blipp_common::disk::{DISK_OPS, DiskCounters, DiskOp, RqCompleteLayout};

/// Filled in by the agent from `events/block/block_rq_complete/format`.
#[unsafe(no_mangle)]
static RQ_COMPLETE_LAYOUT: RqCompleteLayout = RqCompleteLayout {
    dev: 0,
    nr_sector: 0,
    rwbs: 0,
    valid: 0,
};

/// Per-CPU totals, one slot per [`DiskOp`]; the agent sums the CPUs.
#[map]
static DISK_OP_TOTALS: PerCpuArray<DiskCounters> = PerCpuArray::with_max_entries(DISK_OPS, 0);

#[tracepoint]
pub fn block_rq_complete(ctx: TracePointContext) -> u32 {
    // SAFETY: a volatile read keeps the compiler from folding the zeroed
    // initial value; the loader rewrote it before the program was loaded.
    let layout = unsafe { core::ptr::read_volatile(&RQ_COMPLETE_LAYOUT) };
    if layout.valid == 0 {
        return 0;
    }
    // SAFETY: offsets come from this kernel's own format file; the helper
    // behind read_at checks the access.
    let Ok(nr_sector) = (unsafe { ctx.read_at::<u32>(layout.nr_sector as usize) }) else {
        return 0;
    };
    // SAFETY: as above.
    let Ok(rwbs) = (unsafe { ctx.read_at::<[u8; 4]>(layout.rwbs as usize) }) else {
        return 0;
    };
    let op = DiskOp::from_rwbs(&rwbs);
    if let Some(slot) = DISK_OP_TOTALS.get_ptr_mut(op as u32) {
        // Completions run in interrupt context and can preempt a task-context
        // completion on the same CPU, so even a per-CPU slot is updated with
        // atomic adds (uncontended: no cache line bouncing).
        // SAFETY: the map value is 8-byte aligned and lives as long as the map.
        unsafe {
            atomic::add(&raw mut (*slot).requests, 1);
            atomic::add(&raw mut (*slot).sectors, u64::from(nr_sector));
        }
    }
    0
}
