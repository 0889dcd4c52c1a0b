//! The ranges a quantity read as a value (not a counter) can physically
//! take: the counterpart of the plausible speeds of [`crate::counter`],
//! which bound how fast a cumulative counter can advance. A reading
//! outside its range is a mutated or broken file (a fixture tree, a
//! container's fake /proc, a kernel bug), not a measurement: the parser
//! refuses it, the collection fails with a warning naming the file, the
//! field and the bound, and no sample is made of it. A load average of
//! 1e29 from a mutated `/proc/loadavg` was reported as is before.
//!
//! | quantity | bound | why |
//! |---|---|---|
//! | load average (`/proc/loadavg`) | 0 to [`LOAD_MAX`] | an average of runnable and uninterruptible tasks: there are never more tasks than process ids (`PID_MAX_LIMIT`, 2^22) |
//! | memory sizes in kB (`/proc/meminfo`, a NUMA node's `meminfo`, a process's `VmRSS`) | at most [`MEMORY_KB_MAX`] | nothing in memory is larger than the largest virtual address space Linux has (57 bits with 5-level paging: 128 PiB) |
//! | fractions (CPU utilization) | 0 to 1 | clamped where computed (`probe::cpu`) |

/// The largest plausible load average: `PID_MAX_LIMIT` (4,194,304).
pub const LOAD_MAX: f64 = 4_194_304.0;

/// The largest plausible memory size, kB: 2^57 bytes.
pub const MEMORY_KB_MAX: u64 = 1 << 47;
