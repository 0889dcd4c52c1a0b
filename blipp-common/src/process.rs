//! Process events (exec, fork, exit) and per-process counters.

/// Processes the per-process counter map holds at once (LRU beyond; an
/// exiting process's entry is removed by the exit program, which reports
/// it in the exit event).
pub const MAX_PROCS: u32 = 8192;

/// Bytes of the process event ring buffer (a power of two, a multiple of
/// the page size): about 3 000 events between two reads by the agent.
pub const EVENT_RING_BYTES: u32 = 256 * 1024;

/// The largest page size of a kernel blipp runs on (arm64 kernels are
/// built with 4, 16 or 64 KiB pages; x86_64's are 4 KiB).
pub const MAX_PAGE_BYTES: u32 = 64 * 1024;

// The kernel refuses a ring buffer whose size is not a power of two and a
// multiple of its page size: on every architecture, before the build
// ends rather than as a load failure on some arm64 host.
const _: () =
    assert!(EVENT_RING_BYTES.is_power_of_two() && EVENT_RING_BYTES.is_multiple_of(MAX_PAGE_BYTES));

/// Block I/O submitted by one process, counted when it enters a
/// request-based device's queue (in the submitting task's context).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcIo {
    /// Bytes submitted for reading.
    pub read_bytes: u64,
    /// Bytes submitted for writing (buffered writes are submitted by the
    /// kernel's writeback threads, which these bytes are then counted for).
    pub write_bytes: u64,
    /// Read bios.
    pub read_ios: u64,
    /// Write bios.
    pub write_ios: u64,
    /// The command (`comm`) when the entry was made, updated at exec.
    pub comm: [u8; 16],
}

#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` integers and bytes, no padding.
unsafe impl aya::Pod for ProcIo {}

/// What happened to a process.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcEventKind {
    /// It replaced its program (`execve`).
    Exec = 1,
    /// It was created by `fork`/`clone` without `CLONE_THREAD`.
    Fork = 2,
    /// Its last thread exited.
    Exit = 3,
}

impl ProcEventKind {
    /// From the wire value.
    pub fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Exec),
            2 => Some(Self::Fork),
            3 => Some(Self::Exit),
            _ => None,
        }
    }
}

/// One event in the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcEvent {
    /// A [`ProcEventKind`].
    pub kind: u32,
    /// The process (thread group) id.
    pub pid: u32,
    /// The parent's process id.
    pub ppid: u32,
    /// Exit: the wait status (`code << 8`, or the signal number).
    pub exit_status: u32,
    /// When, in `CLOCK_MONOTONIC` nanoseconds.
    pub ts_ns: u64,
    /// Exit: when the process started, in `CLOCK_MONOTONIC` nanoseconds.
    pub start_ns: u64,
    /// The command (`comm`): after an exec, the new one.
    pub comm: [u8; 16],
    /// Exit: the block I/O attributed to the process over its life.
    pub io: ProcIo,
}

#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` integers and bytes, no padding.
unsafe impl aya::Pod for ProcEvent {}

/// Indices of the host-wide event counters (a per-CPU array).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcCount {
    /// Execs.
    Exec = 0,
    /// Process forks (threads are not counted).
    Fork = 1,
    /// Process exits.
    Exit = 2,
    /// Events that found the ring buffer full and were lost.
    Lost = 3,
}

/// Number of [`ProcCount`] slots.
pub const PROC_COUNTS: u32 = 4;

/// Byte offsets inside `struct task_struct` and `struct signal_struct`
/// that the process programs read, from the kernel's BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskLayout {
    /// `task_struct.pid` (int).
    pub pid: u32,
    /// `task_struct.tgid` (int).
    pub tgid: u32,
    /// `task_struct.real_parent` (pointer).
    pub real_parent: u32,
    /// `task_struct.group_leader` (pointer).
    pub group_leader: u32,
    /// `task_struct.start_time` (u64, monotonic ns).
    pub start_time: u32,
    /// `task_struct.exit_code` (int).
    pub exit_code: u32,
    /// `task_struct.signal` (pointer).
    pub signal: u32,
    /// `signal_struct.live.counter` (int): threads still alive.
    pub signal_live: u32,
    /// `task_struct.comm` (char[16]).
    pub comm: u32,
    /// Non-zero once the agent filled the layout in.
    pub valid: u32,
}

#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` integers, no padding.
unsafe impl aya::Pod for TaskLayout {}
