//! `/proc/stat`: CPU time per state, in USER_HZ ticks.
//!
//! The `cpu` lines grew over the years: 4 columns (2.4: user nice system
//! idle), 7 (2.6: + iowait irq softirq), 8 (2.6.11: + steal), 9 (2.6.24:
//! + guest), 10 (2.6.33: + guest_nice).
//!
//! Columns a kernel does not print are `None`, not zero.

use super::{ParseError, number};

/// Ticks spent in each state since boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Normal processes in user mode (includes `guest`).
    pub user: u64,
    /// Niced processes in user mode (includes `guest_nice`).
    pub nice: u64,
    /// Kernel mode.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Waiting for I/O (2.6+).
    pub iowait: Option<u64>,
    /// Servicing hardware interrupts (2.6+).
    pub irq: Option<u64>,
    /// Servicing softirqs (2.6+).
    pub softirq: Option<u64>,
    /// Stolen by the hypervisor (2.6.11+).
    pub steal: Option<u64>,
    /// Running a guest (2.6.24+), already counted in `user`.
    pub guest: Option<u64>,
    /// Running a niced guest (2.6.33+), already counted in `nice`.
    pub guest_nice: Option<u64>,
}

impl CpuTimes {
    /// All ticks, each counted once (`guest` and `guest_nice` are part of
    /// `user` and `nice` and are not added again).
    pub fn total(&self) -> u64 {
        [
            Some(self.user),
            Some(self.nice),
            Some(self.system),
            Some(self.idle),
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ]
        .into_iter()
        .flatten()
        .fold(0u64, u64::saturating_add)
    }
}

/// The parts of /proc/stat blipp uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// The aggregate `cpu` line.
    pub all: CpuTimes,
    /// `cpuN` lines, by N (offline CPUs are absent).
    pub cpus: Vec<(u32, CpuTimes)>,
    /// Context switches since boot.
    pub ctxt: Option<u64>,
    /// Boot time, seconds since the epoch.
    pub btime: Option<u64>,
    /// Forks since boot.
    pub processes: Option<u64>,
    /// Runnable tasks now.
    pub procs_running: Option<u64>,
    /// Tasks blocked on I/O now.
    pub procs_blocked: Option<u64>,
}

fn cpu_times(
    line_no: usize,
    fields: &mut std::str::SplitAsciiWhitespace<'_>,
) -> Result<CpuTimes, ParseError> {
    let mut v = [None; 10];
    let mut count = 0;
    for token in fields {
        if count < v.len() {
            v[count] = Some(number("stat", line_no, token)?);
        }
        count += 1;
    }
    if count < 4 {
        return Err(ParseError::FieldCount {
            file: "stat",
            line: line_no,
            count,
            expected: "4 to 10 cpu columns",
        });
    }
    let [
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
        guest,
        guest_nice,
    ] = v;
    Ok(CpuTimes {
        user: user.unwrap_or_default(),
        nice: nice.unwrap_or_default(),
        system: system.unwrap_or_default(),
        idle: idle.unwrap_or_default(),
        iowait,
        irq,
        softirq,
        steal,
        guest,
        guest_nice,
    })
}

/// Parses `text` into `out`, reusing its per-CPU vector.
pub fn parse_into(text: &str, out: &mut Stat) -> Result<(), ParseError> {
    out.cpus.clear();
    let mut seen_all = false;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        if key == "cpu" {
            out.all = cpu_times(line_no, &mut fields)?;
            seen_all = true;
        } else if let Some(n) = key.strip_prefix("cpu") {
            let n =
                u32::try_from(number("stat", line_no, n)?).map_err(|_| ParseError::BadNumber {
                    file: "stat",
                    line: line_no,
                    token: key.chars().take(32).collect(),
                })?;
            out.cpus.push((n, cpu_times(line_no, &mut fields)?));
        } else {
            let slot = match key {
                "ctxt" => &mut out.ctxt,
                "btime" => &mut out.btime,
                "processes" => &mut out.processes,
                "procs_running" => &mut out.procs_running,
                "procs_blocked" => &mut out.procs_blocked,
                _ => continue,
            };
            *slot = match fields.next() {
                Some(t) => Some(number("stat", line_no, t)?),
                None => None,
            };
        }
    }
    if seen_all {
        Ok(())
    } else {
        Err(ParseError::Missing {
            file: "stat",
            what: "the aggregate cpu line",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_by_kernel_age() {
        let mut s = Stat::default();
        parse_into("cpu  1 2 3 4\n", &mut s).unwrap();
        assert_eq!(s.all.iowait, None);
        assert_eq!(s.all.total(), 10);
        parse_into(
            "cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 9 10\nbtime 1700000000\n",
            &mut s,
        )
        .unwrap();
        assert_eq!(s.all.guest_nice, Some(10));
        assert_eq!(s.all.total(), 36, "guest columns are part of user/nice");
        assert_eq!(s.cpus.len(), 1);
        assert_eq!(s.btime, Some(1_700_000_000));
        assert!(parse_into("cpu 1 2 3\n", &mut s).is_err());
        assert!(parse_into("intr 5\n", &mut s).is_err());
        assert!(parse_into("cpu 1 2 x 4\n", &mut s).is_err());
    }
}
