//! Process life: exec, fork and exit events through a ring buffer (they
//! are rare), host-wide counts of each, and the exit of a process carrying
//! the block I/O attributed to it over its life.

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_current_comm, bpf_ktime_get_ns},
    macros::{btf_tracepoint, map},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::BtfTracePointContext,
};
use blipp_common::process::{
    EVENT_RING_BYTES, MAX_PROCS, PROC_COUNTS, ProcCount, ProcEvent, ProcEventKind, ProcIo,
    TaskLayout,
};

use crate::kmem;

/// Filled in by the agent from the kernel's BTF.
#[unsafe(no_mangle)]
static TASK_LAYOUT: TaskLayout = TaskLayout {
    pid: 0,
    tgid: 0,
    real_parent: 0,
    group_leader: 0,
    start_time: 0,
    exit_code: 0,
    signal: 0,
    signal_live: 0,
    comm: 0,
    valid: 0,
};

/// Bytes of events in the ring from which submitting one wakes the agent.
const WAKE_BYTES: u64 = EVENT_RING_BYTES as u64 / 8;

/// Exec, fork and exit events for the agent.
#[map]
static PROC_EVENTS: RingBuf = RingBuf::with_byte_size(EVENT_RING_BYTES, 0);

/// Host-wide event counts, per CPU. Each index has one writing program.
#[map]
static PROC_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(PROC_COUNTS, 0);

/// Block I/O per process, filled by the attribution programs (disk_io.rs).
#[map]
pub(crate) static PROC_IO: LruHashMap<u32, ProcIo> = LruHashMap::with_max_entries(MAX_PROCS, 0);

/// Set once the ring-buffer-full warning was logged, so that a flood of
/// lost events logs one line, not one per event.
#[map]
static LOST_LOGGED: Array<u32> = Array::with_max_entries(1, 0);

#[inline(always)]
fn layout() -> Option<TaskLayout> {
    // SAFETY: a volatile read keeps the compiler from folding the initial
    // value; the loader rewrote it before the program was loaded.
    let l = unsafe { core::ptr::read_volatile(&TASK_LAYOUT) };
    (l.valid != 0).then_some(l)
}

#[inline(always)]
fn count(which: ProcCount) {
    if let Some(n) = PROC_COUNTERS.get_ptr_mut(which as u32) {
        // SAFETY: per-CPU value; each of these indices has a single writing
        // program, which the kernel never runs nested on one CPU.
        unsafe { *n += 1 };
    }
}

#[inline(always)]
fn lost<C: EbpfContext>(ctx: &C) {
    // The three programs share this slot, and tracing programs can be
    // preempted: an atomic add.
    if let Some(n) = PROC_COUNTERS.get_ptr_mut(ProcCount::Lost as u32) {
        // SAFETY: per-CPU value, 8-byte aligned.
        unsafe { crate::atomic::add(n, 1) };
    }
    if let Some(flag) = LOST_LOGGED.get_ptr_mut(0) {
        // SAFETY: array value, lives as long as the map.
        unsafe {
            if core::ptr::read_volatile(flag) == 0 {
                core::ptr::write_volatile(flag, 1);
                aya_log_ebpf::warn!(
                    ctx,
                    "process event ring buffer full: events lost (counted in PROC_COUNTERS)"
                );
            }
        }
    }
}

/// Reserves an event, fills the common fields, and lets `fill` do the rest.
#[inline(always)]
fn emit<C: EbpfContext>(
    ctx: &C,
    kind: ProcEventKind,
    pid: u32,
    ppid: u32,
    fill: impl FnOnce(&mut ProcEvent),
) {
    let Some(mut entry) = PROC_EVENTS.reserve::<ProcEvent>(0) else {
        lost(ctx);
        return;
    };
    let e = entry.as_mut_ptr();
    // SAFETY: the reservation is ours and sized for a ProcEvent; every
    // field is written before submit.
    unsafe {
        e.write(ProcEvent {
            kind: kind as u32,
            pid,
            ppid,
            exit_status: 0,
            ts_ns: bpf_ktime_get_ns(),
            start_ns: 0,
            comm: bpf_get_current_comm().unwrap_or_default(),
            io: ProcIo::default(),
        });
        fill(&mut *e);
    }
    entry.submit(wakeup());
}

/// Whether submitting an event wakes the agent: only once the ring holds
/// [`WAKE_BYTES`]. The agent drains the ring at every collection anyway,
/// so a wake-up per event (what flags 0 give when the agent keeps up)
/// would only add an interrupt and a context switch to every fork and
/// exec of a storm; with one per [`WAKE_BYTES`] the ring still has seven
/// eighths of its size left for the agent to wake up in.
#[inline(always)]
fn wakeup() -> u64 {
    let waiting = PROC_EVENTS.query(u64::from(BPF_RB_AVAIL_DATA));
    if waiting >= WAKE_BYTES {
        u64::from(BPF_RB_FORCE_WAKEUP)
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    }
}

/// The thread group id of the parent of `task`.
#[inline(always)]
fn parent_tgid(task: *const u8, l: &TaskLayout) -> u32 {
    // SAFETY: BTF member offsets of this kernel; the verifier checks them.
    unsafe {
        let parent: *const u8 = kmem::load(task, l.real_parent);
        if parent.is_null() {
            return 0;
        }
        kmem::load(parent, l.tgid)
    }
}

/// sched_process_exec(struct task_struct *p, pid_t old_pid,
/// struct linux_binprm *bprm): runs in the task, after its new `comm` is
/// set.
#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> i32 {
    let Some(l) = layout() else { return 0 };
    let task: *const u8 = ctx.arg(0);
    // SAFETY: BTF member offset; the verifier checks it.
    let tgid: u32 = unsafe { kmem::load(task, l.tgid) };
    count(ProcCount::Exec);
    let ppid = parent_tgid(task, &l);
    emit(&ctx, ProcEventKind::Exec, tgid, ppid, |_| {});
    if let Some(io) = PROC_IO.get_ptr_mut(tgid) {
        // SAFETY: map value; a racing reader sees an old or new name.
        unsafe { (*io).comm = bpf_get_current_comm().unwrap_or_default() };
    }
    0
}

/// sched_process_fork(struct task_struct *parent, struct task_struct
/// *child): runs in the parent. Threads are not processes: skipped.
#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    let Some(l) = layout() else { return 0 };
    let parent: *const u8 = ctx.arg(0);
    let child: *const u8 = ctx.arg(1);
    // SAFETY: BTF member offsets; the verifier checks them.
    let (pid, tgid, ppid): (u32, u32, u32) = unsafe {
        (
            kmem::load(child, l.pid),
            kmem::load(child, l.tgid),
            kmem::load(parent, l.tgid),
        )
    };
    if pid != tgid {
        return 0;
    }
    count(ProcCount::Fork);
    emit(&ctx, ProcEventKind::Fork, tgid, ppid, |_| {});
    0
}

/// sched_process_exit(struct task_struct *p, ...): runs in each exiting
/// thread; the process has exited when its live thread count is zero.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(ctx: BtfTracePointContext) -> i32 {
    let Some(l) = layout() else { return 0 };
    let task: *const u8 = ctx.arg(0);
    // SAFETY (loads): BTF member offsets; the verifier checks them.
    let signal: *const u8 = unsafe { kmem::load(task, l.signal) };
    if signal.is_null() {
        return 0;
    }
    let live: i32 = unsafe { kmem::load(signal, l.signal_live) };
    if live != 0 {
        return 0;
    }
    let tgid: u32 = unsafe { kmem::load(task, l.tgid) };
    let status: u32 = unsafe { kmem::load(task, l.exit_code) };
    let leader: *const u8 = unsafe { kmem::load(task, l.group_leader) };
    let start: u64 = if leader.is_null() {
        0
    } else {
        unsafe { kmem::load(leader, l.start_time) }
    };
    count(ProcCount::Exit);
    let ppid = parent_tgid(task, &l);
    // SAFETY: map value pointer, copied at once.
    let io = PROC_IO.get_ptr(tgid).map(|p| unsafe { *p });
    emit(&ctx, ProcEventKind::Exit, tgid, ppid, |e| {
        e.exit_status = status;
        e.start_ns = start;
        if let Some(io) = io {
            e.io = io;
        }
    });
    if io.is_some() {
        let _ = PROC_IO.remove(tgid);
    }
    0
}
