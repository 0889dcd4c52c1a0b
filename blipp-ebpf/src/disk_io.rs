//! Block I/O attributed to the process that submitted it.
//!
//! Completions run in interrupt context, where the submitter is unknown,
//! so attribution happens at submission, in the submitting task: every bio
//! that enters a request-based queue either gets a new request
//! (`block_getrq`) or is merged into one (`block_bio_backmerge`,
//! `block_bio_frontmerge`), each exactly once and on the same devices the
//! completion program covers. (`block_bio_queue` would also see bios of
//! stacked devices such as LVM, counting them again at each layer.)
//!
//! These are classic tracepoints: their fields are stable by name, and the
//! agent reads their offsets from tracefs.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::tracepoint,
    programs::TracePointContext,
};
use blipp_common::disk::{BioLayout, DiskOp};
use blipp_common::process::ProcIo;

use crate::atomic;
use crate::process::PROC_IO;

/// Filled in by the agent from `events/block/block_getrq/format`.
#[unsafe(no_mangle)]
static GETRQ_LAYOUT: BioLayout = BioLayout {
    dev: 0,
    nr_sector: 0,
    rwbs: 0,
    valid: 0,
};

/// From `events/block/block_bio_backmerge/format`.
#[unsafe(no_mangle)]
static BACKMERGE_LAYOUT: BioLayout = BioLayout {
    dev: 0,
    nr_sector: 0,
    rwbs: 0,
    valid: 0,
};

/// From `events/block/block_bio_frontmerge/format`.
#[unsafe(no_mangle)]
static FRONTMERGE_LAYOUT: BioLayout = BioLayout {
    dev: 0,
    nr_sector: 0,
    rwbs: 0,
    valid: 0,
};

#[inline(always)]
fn attribute(ctx: &TracePointContext, layout: &BioLayout) {
    // SAFETY: a volatile read keeps the compiler from folding the initial
    // value; the loader rewrote it before the program was loaded.
    let l = unsafe { core::ptr::read_volatile(layout) };
    if l.valid == 0 {
        return;
    }
    // SAFETY: offsets from this kernel's format file; the helper behind
    // read_at checks the access.
    let Ok(nr_sector) = (unsafe { ctx.read_at::<u32>(l.nr_sector as usize) }) else {
        return;
    };
    // SAFETY: as above.
    let Ok(rwbs) = (unsafe { ctx.read_at::<[u8; 4]>(l.rwbs as usize) }) else {
        return;
    };
    let op = DiskOp::from_rwbs(&rwbs);
    if !matches!(op, DiskOp::Read | DiskOp::Write) || nr_sector == 0 {
        return;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let io = match PROC_IO.get_ptr_mut(tgid) {
        Some(io) => io,
        None => {
            let fresh = ProcIo {
                comm: bpf_get_current_comm().unwrap_or_default(),
                ..ProcIo::default()
            };
            // BPF_NOEXIST: another CPU may have inserted it meanwhile.
            let _ = PROC_IO.insert(tgid, fresh, 1);
            match PROC_IO.get_ptr_mut(tgid) {
                Some(io) => io,
                None => return,
            }
        }
    };
    let bytes = u64::from(nr_sector) * 512;
    // SAFETY: map value, 8-byte aligned; threads of one process submit on
    // several CPUs at once, hence atomic adds.
    unsafe {
        if op == DiskOp::Read {
            atomic::add(&raw mut (*io).read_bytes, bytes);
            atomic::add(&raw mut (*io).read_ios, 1);
        } else {
            atomic::add(&raw mut (*io).write_bytes, bytes);
            atomic::add(&raw mut (*io).write_ios, 1);
        }
    }
}

#[tracepoint]
pub fn block_getrq(ctx: TracePointContext) -> u32 {
    attribute(&ctx, &GETRQ_LAYOUT);
    0
}

#[tracepoint]
pub fn block_bio_backmerge(ctx: TracePointContext) -> u32 {
    attribute(&ctx, &BACKMERGE_LAYOUT);
    0
}

#[tracepoint]
pub fn block_bio_frontmerge(ctx: TracePointContext) -> u32 {
    attribute(&ctx, &FRONTMERGE_LAYOUT);
    0
}
