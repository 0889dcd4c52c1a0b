//! Block requests: completions, bytes and latency per device and operation,
//! with no per-request state.
//!
//! A classic biolatency design stores an issue timestamp per request in a
//! hash map (insert at issue, lookup and delete at completion): two hash
//! operations and a shared lock bucket per I/O. The kernel already keeps
//! those timestamps in `struct request` (`start_time_ns` when the request is
//! created, `io_start_time_ns` when it is issued, the latter while block
//! stats are on), so this program runs once per completion on the BTF
//! tracepoint `block_rq_complete` and reads them there: O(1), no map keyed
//! by request at all.
//!
//! Devices are kept apart in a small open-addressed slot table (an array,
//! looked up by the device number's hash, claimed on first sight) so that
//! the per-event work is array lookups only.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{btf_tracepoint, map},
    maps::{Array, PerCpuArray},
    programs::BtfTracePointContext,
};
use blipp_common::disk::{
    DISK_OPS, DISK_SLOT_CLAIMS, DISK_SLOT_ENTRIES, DISK_SLOT_PROBES, DISK_SLOT_UNCOVERED,
    DiskCounters, DiskOp, DiskSlot, LATENCY_KINDS, LATENCY_OPS, LatencyKind, MAX_DISKS, NO_FIELD,
    REQ_OP_MASK, RequestLayout, counter_index, histogram_index, home_slot, make_dev,
};
use blipp_common::histogram::{self, Buckets};

use crate::{atomic, kmem};

/// Filled in by the agent from the kernel's BTF.
#[unsafe(no_mangle)]
static REQUEST_LAYOUT: RequestLayout = RequestLayout::UNSET;

/// Which device owns each slot (0: free), then how many slots were
/// claimed and whether a device found none.
#[map]
static DISK_SLOTS: Array<DiskSlot> = Array::with_max_entries(DISK_SLOT_ENTRIES, 0);

/// Per-CPU requests and bytes per (slot, operation). Only this program
/// writes it, and the kernel never runs a program nested in itself on one
/// CPU, so plain adds are safe.
#[map]
static DISK_COUNTERS: PerCpuArray<DiskCounters> =
    PerCpuArray::with_max_entries(MAX_DISKS * DISK_OPS, 0);

/// Latency histograms per (slot, operation, kind), shared by all CPUs
/// (one copy: atomic adds, contended only when CPUs complete requests of
/// one device at the same latency at the same time).
#[map]
static DISK_LATENCY: Array<Buckets> =
    Array::with_max_entries(MAX_DISKS * LATENCY_OPS * LATENCY_KINDS, 0);

/// The slot of `dev`, claiming a free one on first sight.
#[inline(always)]
fn slot_of(dev: u32) -> Option<u32> {
    let home = home_slot(dev);
    for probe in 0..DISK_SLOT_PROBES {
        let slot = (home + probe) & (MAX_DISKS - 1);
        let owner = DISK_SLOTS.get_ptr_mut(slot)?;
        // SAFETY: array values live as long as the map.
        let current = unsafe { core::ptr::read_volatile(owner) };
        if current == dev {
            return Some(slot);
        }
        if current == 0 {
            // Two CPUs claiming one free slot for two new devices in the
            // same instant would make one request count for the other
            // device; the loser moves on at its next completion.
            // SAFETY: as above.
            unsafe { core::ptr::write_volatile(owner, dev) };
            // Counted after the slot is written; the agent reads the table
            // again until it finds as many claimed slots as counted.
            if let Some(claims) = DISK_SLOTS.get_ptr_mut(DISK_SLOT_CLAIMS) {
                // SAFETY: a 4-byte aligned array value.
                unsafe { atomic::add_u32(claims, 1) };
            }
            return Some(slot);
        }
    }
    None
}

#[inline(always)]
fn record(slot: u32, op: u32, kind: LatencyKind, ns: u64) {
    if let Some(h) = DISK_LATENCY.get_ptr_mut(histogram_index(slot, op, kind)) {
        // The compiler knows the bucket is in range and would drop this
        // check; the verifier does not, so hide the value from the former.
        let b = histogram::bucket(ns);
        // SAFETY: reads a local.
        let b = unsafe { core::ptr::read_volatile(&b) };
        if b < histogram::BUCKETS {
            // SAFETY: in bounds (checked), 8-byte aligned map value.
            unsafe { atomic::add((h as *mut u64).add(b), 1) };
        }
    }
}

#[btf_tracepoint(function = "block_rq_complete")]
pub fn block_rq_complete(ctx: BtfTracePointContext) -> i32 {
    // SAFETY: a volatile read keeps the compiler from folding the initial
    // value; the loader rewrote it before the program was loaded.
    let l = unsafe { core::ptr::read_volatile(&REQUEST_LAYOUT) };
    if l.valid == 0 {
        return 0;
    }
    // block_rq_complete(struct request *rq, blk_status_t error,
    // unsigned int nr_bytes), the same on every kernel since 4.x.
    let rq: *const u8 = ctx.arg(0);
    let nr_bytes: u64 = ctx.arg::<u64>(2) & 0xffff_ffff;
    // SAFETY (all loads below): offsets of these members in this kernel's
    // BTF; the verifier checks them.
    let cmd_flags: u32 = unsafe { kmem::load(rq, l.cmd_flags) };
    let remaining: u32 = unsafe { kmem::load(rq, l.data_len) };
    let disk: *const u8 = if l.rq_disk != NO_FIELD {
        unsafe { kmem::load(rq, l.rq_disk) }
    } else {
        let q: *const u8 = unsafe { kmem::load(rq, l.q) };
        if q.is_null() {
            return 0;
        }
        unsafe { kmem::load(q, l.q_disk) }
    };
    if disk.is_null() {
        return 0;
    }
    let major: u32 = unsafe { kmem::load(disk, l.disk_major) };
    let minor: u32 = unsafe { kmem::load(disk, l.disk_first_minor) };
    let dev = make_dev(major, minor);
    if dev == 0 {
        return 0;
    }
    let Some(slot) = slot_of(dev) else {
        if let Some(flag) = DISK_SLOTS.get_ptr_mut(DISK_SLOT_UNCOVERED) {
            // Written once: every later completion of an uncovered disk
            // only reads it, so CPUs do not pass its cache line around.
            // SAFETY: array values live as long as the map.
            unsafe {
                if core::ptr::read_volatile(flag) == 0 {
                    core::ptr::write_volatile(flag, 1);
                }
            }
        }
        return 0;
    };
    let op = DiskOp::from_req_op(cmd_flags & REQ_OP_MASK);
    let Some(c) = DISK_COUNTERS.get_ptr_mut(counter_index(slot, op)) else {
        return 0;
    };
    // blk_update_request may complete a request in parts; the last part
    // is the one that covers what remains.
    let last = nr_bytes >= u64::from(remaining);
    // SAFETY: per-CPU value, this program is its only writer.
    unsafe {
        (*c).bytes += nr_bytes;
        if last {
            (*c).requests += 1;
        }
    }
    if !last || op as u32 >= LATENCY_OPS {
        return 0;
    }
    let start: u64 = unsafe { kmem::load(rq, l.start_time_ns) };
    if start == 0 {
        // The kernel timestamps requests only when something (I/O stats,
        // a scheduler) needs it.
        return 0;
    }
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let op = op as u32;
    record(slot, op, LatencyKind::Total, now.saturating_sub(start));
    let issued: u64 = unsafe { kmem::load(rq, l.io_start_time_ns) };
    if issued >= start {
        record(slot, op, LatencyKind::Queue, issued - start);
        record(slot, op, LatencyKind::Device, now.saturating_sub(issued));
    }
    0
}
