//! What a running process costs, read from `/proc/PID`: CPU time over a
//! window and memory.
//!
//! CPU time comes from each thread's `schedstat` (nanoseconds on the CPU),
//! because `/proc/PID/stat` counts in clock ticks (10 ms): over a one-minute
//! window of a daemon that uses a few hundred milliseconds, the tick count
//! alone would be off by up to 10%. `schedstat` misses threads that end
//! inside the window, so the tick count of the whole process (which keeps
//! the time of ended threads) is read as well: when the two disagree by more
//! than the ticks' rounding, the tick figure is used and marked inexact.

use std::collections::HashMap;
use std::fs;

use anyhow::{Context as _, Result};

/// The CPU time of a process and of each of its threads at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuSnapshot {
    /// Nanoseconds on the CPU per live thread (`task/TID/schedstat`).
    threads: HashMap<u32, u64>,
    /// utime + stime of the whole process, live and ended threads
    /// (`stat`), in clock ticks.
    ticks: u64,
}

/// CPU time used between two snapshots.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuUsed {
    /// Seconds.
    pub seconds: f64,
    /// From the threads' nanosecond counters (true), or from clock ticks
    /// because a thread ended inside the window (false).
    pub exact: bool,
}

/// Nanoseconds per clock tick (`USER_HZ`).
fn tick_ns() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz)
        .ok()
        .filter(|&hz| hz > 0)
        .map_or(10_000_000, |hz| 1_000_000_000 / hz)
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted
/// after its last `)`.
pub fn parse_stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The first field of a `schedstat` line: nanoseconds on the CPU.
pub fn parse_schedstat_ns(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// A `kB` line of `/proc/PID/status` (`VmHWM`, `VmRSS`), in kB.
pub fn parse_status_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Reads the CPU time of `pid` and its threads now.
pub fn cpu_snapshot(pid: u32) -> Result<CpuSnapshot> {
    let stat_path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&stat_path).with_context(|| format!("reading {stat_path}"))?;
    let ticks = parse_stat_ticks(&stat).with_context(|| format!("parsing {stat_path}"))?;
    let mut threads = HashMap::new();
    let tasks = format!("/proc/{pid}/task");
    for entry in fs::read_dir(&tasks).with_context(|| format!("listing {tasks}"))? {
        let entry = entry?;
        let Some(tid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // A thread may end between the listing and the read.
        if let Some(ns) = fs::read_to_string(entry.path().join("schedstat"))
            .ok()
            .as_deref()
            .and_then(parse_schedstat_ns)
        {
            threads.insert(tid, ns);
        }
    }
    Ok(CpuSnapshot { threads, ticks })
}

/// The CPU time used from `before` to `after` (see the module's comment).
pub fn cpu_used(before: &CpuSnapshot, after: &CpuSnapshot) -> CpuUsed {
    cpu_used_with_tick(before, after, tick_ns())
}

fn cpu_used_with_tick(before: &CpuSnapshot, after: &CpuSnapshot, tick_ns: u64) -> CpuUsed {
    let precise: u64 = after
        .threads
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(before.threads.get(tid).copied().unwrap_or(0)))
        .sum();
    let by_ticks = after.ticks.saturating_sub(before.ticks) * tick_ns;
    let thread_ended = before
        .threads
        .keys()
        .any(|t| !after.threads.contains_key(t));
    // Each of utime and stime is rounded down to a tick at both ends.
    let unexplained = by_ticks > precise + 2 * tick_ns;
    #[expect(clippy::cast_precision_loss, reason = "nanoseconds to seconds")]
    if thread_ended || unexplained {
        CpuUsed {
            seconds: by_ticks as f64 / 1e9,
            exact: false,
        }
    } else {
        CpuUsed {
            seconds: precise as f64 / 1e9,
            exact: true,
        }
    }
}

/// Resident memory of a process, in kB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// Peak resident set size over the process's life (`VmHWM`).
    pub peak_kb: u64,
    /// Resident set size now (`VmRSS`).
    pub now_kb: u64,
    /// Of that, private memory (`RssAnon`); the rest is mapped files (the
    /// program's code, libraries) that other processes may share.
    pub anon_kb: u64,
}

/// Reads the memory figures of `pid`.
pub fn memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |key| parse_status_kb(&text, key).with_context(|| format!("{path}: no {key}"));
    Ok(Memory {
        peak_kb: field("VmHWM")?,
        now_kb: field("VmRSS")?,
        anon_kb: field("RssAnon")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (tokio) (x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                        37 15 0 0 20 0 3 0 12345 100000 2000 18446744073709551615";

    #[test]
    fn stat_ticks_are_counted_after_the_name() {
        assert_eq!(parse_stat_ticks(STAT), Some(52));
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn schedstat_and_status_fields() {
        assert_eq!(
            parse_schedstat_ns("184521004 26582943 425\n"),
            Some(184_521_004)
        );
        let status =
            "Name:\tblippd\nVmHWM:\t    6120 kB\nVmRSS:\t    5900 kB\nRssAnon:\t 1000 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(6120));
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(5900));
        assert_eq!(parse_status_kb(status, "RssAnon"), Some(1000));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    fn snap(threads: &[(u32, u64)], ticks: u64) -> CpuSnapshot {
        CpuSnapshot {
            threads: threads.iter().copied().collect(),
            ticks,
        }
    }

    const TICK: u64 = 10_000_000;

    #[test]
    fn live_threads_give_nanoseconds() {
        // 0.123 s on one thread, 0.2 s on one born inside the window.
        let before = snap(&[(1, 1_000_000_000)], 100);
        let after = snap(&[(1, 1_123_000_000), (2, 200_000_000)], 132);
        let used = cpu_used_with_tick(&before, &after, TICK);
        assert!(used.exact);
        assert!((used.seconds - 0.323).abs() < 1e-9, "{used:?}");
    }

    #[test]
    fn an_ended_thread_falls_back_to_ticks() {
        let before = snap(&[(1, 1_000_000_000), (2, 50_000_000)], 105);
        let after = snap(&[(1, 1_100_000_000)], 125);
        let used = cpu_used_with_tick(&before, &after, TICK);
        assert!(!used.exact);
        assert!((used.seconds - 0.2).abs() < 1e-9, "{used:?}");
    }

    #[test]
    fn time_of_a_thread_born_and_ended_inside_is_not_lost() {
        // The threads saw 0.1 s; the process's ticks say 0.5 s.
        let before = snap(&[(1, 0)], 0);
        let after = snap(&[(1, 100_000_000)], 50);
        let used = cpu_used_with_tick(&before, &after, TICK);
        assert!(!used.exact);
        assert!((used.seconds - 0.5).abs() < 1e-9, "{used:?}");
    }

    #[test]
    fn this_process_reads() {
        let pid = std::process::id();
        let snapshot = cpu_snapshot(pid).unwrap();
        // SAFETY: gettid has no preconditions.
        let tid = u32::try_from(unsafe { libc::gettid() }).unwrap();
        assert!(snapshot.threads.contains_key(&pid), "{snapshot:?}");
        assert!(snapshot.threads.contains_key(&tid), "{snapshot:?}");
        let m = memory(pid).unwrap();
        assert!(m.peak_kb >= m.now_kb && m.now_kb > m.anon_kb, "{m:?}");
    }
}
