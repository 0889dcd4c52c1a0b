//! Every bound blipp puts on what it is given, in one place, each with the
//! reason for its value: how much of a file it reads, and how often or how
//! far ahead a schedule may fire. A file, a typo or another program can
//! otherwise make blippd read without end (`/dev/zero` as `proc_dir`'s
//! `loadavg`), block (a FIFO), or collect a million times a second.
//!
//! The interval bounds are repeated in `schemas/blipp-config.schema.json`
//! (a schema cannot refer to Rust constants); a test checks that the two
//! agree.

/// The largest configuration file, bytes (4 MiB). A configuration of
/// 1000 probes is about 300 kB; four megabytes leave an order of magnitude
/// for comments in long `command` lines and eventType lists while keeping
/// a hostile file from costing more than a few megabytes to parse. Checked
/// by the one function that reads configuration files
/// ([`crate::config::load`]), whichever command reads it.
pub const CONFIG_FILE_MAX: u64 = 4 << 20;

/// The largest manifest one image of blippd hands to the next through
/// memory: it carries the configuration file's text as a JSON string, which
/// escaping can make twice as long (every `"` and newline gets a `\`),
/// plus a few kilobytes of descriptors; one more megabyte is the margin.
pub const HANDOVER_MANIFEST_MAX: u64 = 2 * CONFIG_FILE_MAX + (1 << 20);

/// The largest file read whole under `proc_dir` or `sys_dir` (64 MiB).
/// The large ones are tables that grow with the host: `/proc/net/dev`
/// with 10,000 container interfaces is about 1.5 MB, `/proc/diskstats`
/// with 10,000 devices about 1.3 MB, `/proc/stat` on a 4096-CPU host with
/// thousands of interrupts about 2 MB, `/proc/net/snmp` a few kilobytes.
/// Sixty-four megabytes is well over ten times the largest of them, and
/// small enough that a file that never ends costs a bounded allocation,
/// released when the read fails.
pub const KERNEL_FILE_MAX: u64 = 64 << 20;

/// The largest small text file read whole: a pidfile, `/etc/os-release`,
/// one sysfs attribute (the kernel caps those at a page), a tracefs
/// `format` file, a TLS certificate or key (64 KiB).
pub const SMALL_FILE_MAX: u64 = 64 << 10;

/// The largest PEM file (`ssl_cert`, `ssl_key`, `ssl_cafile`): a system's
/// whole CA bundle is about 220 kB (4 MiB).
pub const PEM_FILE_MAX: u64 = 4 << 20;

/// The shortest interval between two collections of one probe, seconds
/// (0.1 s). Every collection reads a few files and writes a few lines:
/// measured (issue 16), the default probes at 0.001 s cost 13 % of a CPU
/// and 12.7 MB/s of output, and at 1e-9 s blippd does nothing but collect.
/// A tenth of a second is finer than anything the MS plots; finer detail
/// is the eBPF probes' job, which count every event in the kernel.
pub const MIN_INTERVAL: f64 = 0.1;

/// The longest interval between two collections, or of any waiting time
/// the configuration sets (UNIS polling, back-off), seconds (one year).
/// Longer is a typo (`1e308`): the probe would never collect while looking
/// configured. A year still allows a yearly inventory.
pub const MAX_INTERVAL: f64 = 365.0 * 86_400.0;

/// The latest `start_time` or `end_time`, seconds since the epoch (the
/// year 3000). A time further away than that is a typo that silently
/// never collects.
pub const MAX_EPOCH_SECONDS: f64 = 32_503_680_000.0;

/// The longest a `dummy` collection waits, seconds, whatever its
/// `duration`: stopping blippd waits for a collection under way, and this
/// keeps that below systemd's default stop timeout (90 s).
pub const MAX_DUMMY_DURATION: f64 = 60.0;
