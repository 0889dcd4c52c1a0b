//! The machine a benchmark ran on, and how busy it was meanwhile: figures
//! taken while other work competes for the CPUs are not comparable, so every
//! table says under what load it was measured.

use std::fmt;
use std::fs;

/// What the published figures name: `nproc`, CPU model, kernel, memory.
pub struct Machine {
    /// Online CPUs.
    pub cpus: usize,
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// MemTotal, kB.
    pub memory_kb: u64,
    /// `PRETTY_NAME` of /etc/os-release.
    pub os: String,
}

impl Machine {
    /// Reads this machine's description; what cannot be read is "unknown".
    pub fn this() -> Self {
        let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let field = |text: &str, key: &str| {
            text.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once([':', '='])?;
                    (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
                })
                .unwrap_or_else(|| "unknown".to_owned())
        };
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model: field(&cpuinfo, "model name"),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            memory_kb: field(&read("/proc/meminfo"), "MemTotal")
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0),
            os: field(&read("/etc/os-release"), "PRETTY_NAME"),
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        #[expect(clippy::cast_precision_loss, reason = "kB to GiB for display")]
        let gib = self.memory_kb as f64 / 1024.0 / 1024.0;
        write!(
            f,
            "{} CPUs ({}), {gib:.1} GiB, Linux {}, {}",
            self.cpus, self.cpu_model, self.kernel, self.os
        )
    }
}

/// The three load averages, as /proc/loadavg prints them.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_ascii_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Busy and total jiffies of all CPUs together (the `cpu` line of
/// /proc/stat), to tell how busy the machine was during a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

/// The `cpu` line of /proc/stat: busy is every state but idle and iowait;
/// guest time is already part of user time and is not added again.
pub fn parse_cpu_line(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total - idle,
        total,
    })
}

/// The machine's CPU times now.
pub fn cpu_times() -> CpuTimes {
    parse_cpu_line(&fs::read_to_string("/proc/stat").unwrap_or_default()).unwrap_or_default()
}

/// How many CPUs were busy on average between two readings (0 when no
/// time passed).
pub fn busy_cpus(before: CpuTimes, after: CpuTimes, cpus: usize) -> f64 {
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    #[expect(clippy::cast_precision_loss, reason = "jiffies to a fraction")]
    let fraction = after.busy.saturating_sub(before.busy) as f64 / total as f64;
    #[expect(clippy::cast_precision_loss, reason = "a CPU count")]
    let cpus = cpus as f64;
    fraction * cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_line_busy_excludes_idle_and_iowait() {
        let stat = "cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        let t = parse_cpu_line(stat).unwrap();
        assert_eq!((t.busy, t.total), (160, 1000));
        assert_eq!(parse_cpu_line("intr 1 2 3"), None);
    }

    #[test]
    fn busy_cpus_scales_by_the_cpu_count() {
        let a = CpuTimes {
            busy: 100,
            total: 1000,
        };
        let b = CpuTimes {
            busy: 350,
            total: 2000,
        };
        assert!((busy_cpus(a, b, 2) - 0.5).abs() < 1e-12);
        assert!(busy_cpus(a, a, 2).abs() < 1e-12);
    }

    #[test]
    fn this_machine_is_described() {
        let m = Machine::this();
        assert!(m.cpus > 0 && m.memory_kb > 0, "{m}");
        assert!(!m.kernel.is_empty());
    }
}
