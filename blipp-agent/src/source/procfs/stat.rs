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

/// The boot time (`btime`, seconds since the epoch), for readers that need
/// nothing else of the file.
pub fn boot_time(text: &str) -> Option<u64> {
    let mut s = Stat::default();
    parse_into(text, &mut s).ok()?;
    s.btime
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
        assert_eq!(
            boot_time("cpu  1 2 3 4 5 6 7 8 9 10\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        assert_eq!(boot_time("cpu  1 2 3 4 5 6 7 8 9 10\n"), None);
        assert!(parse_into("cpu 1 2 3\n", &mut s).is_err());
        assert!(parse_into("intr 5\n", &mut s).is_err());
        assert!(parse_into("cpu 1 2 x 4\n", &mut s).is_err());
    }

    fn fixture(text: &str) -> Stat {
        let mut s = Stat::default();
        parse_into(text, &mut s).unwrap();
        s
    }

    #[test]
    fn four_columns_linux_2_4() {
        let s = fixture(include_str!("fixtures/stat-2.4-4col"));
        assert_eq!(
            s.all,
            CpuTimes {
                user: 4705,
                nice: 356,
                system: 584,
                idle: 3_699_176,
                ..CpuTimes::default()
            }
        );
        assert_eq!(s.cpus.len(), 2);
        assert_eq!(
            s.cpus[1],
            (
                1,
                CpuTimes {
                    user: 3312,
                    nice: 76,
                    system: 283,
                    idle: 1_849_922,
                    ..CpuTimes::default()
                }
            )
        );
        assert_eq!(
            (s.ctxt, s.btime, s.processes),
            (Some(2_159_089), Some(1_062_191_376), Some(8358))
        );
        assert_eq!(s.procs_running, None, "2.4 has no procs_running");
    }

    #[test]
    fn seven_columns_linux_2_6_9() {
        let s = fixture(include_str!("fixtures/stat-2.6.9-7col"));
        assert_eq!(
            s.all,
            CpuTimes {
                user: 2255,
                nice: 34,
                system: 2290,
                idle: 22_625_563,
                iowait: Some(6290),
                irq: Some(127),
                softirq: Some(456),
                ..CpuTimes::default()
            }
        );
        assert_eq!(s.all.steal, None);
        assert_eq!(s.cpus.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 1]);
        assert_eq!((s.procs_running, s.procs_blocked), (Some(1), Some(0)));
    }

    #[test]
    fn eight_columns_linux_2_6_18() {
        let s = fixture(include_str!("fixtures/stat-2.6.18-8col"));
        assert_eq!(s.all.steal, Some(3312));
        assert_eq!(s.all.guest, None);
        assert_eq!(
            s.all.total(),
            139_797 + 1069 + 41_573 + 4_361_702 + 39_476 + 1183 + 6207 + 3312
        );
    }

    #[test]
    fn nine_columns_linux_2_6_24() {
        let s = fixture(include_str!("fixtures/stat-2.6.24-9col"));
        assert_eq!(
            (s.all.steal, s.all.guest, s.all.guest_nice),
            (Some(0), Some(151_234), None)
        );
        assert_eq!(s.cpus.len(), 4);
        assert_eq!(s.cpus[3].1.idle, 16_952_809);
        // guest is inside user, not on top of it.
        assert_eq!(
            s.all.total(),
            2_398_524 + 5211 + 436_129 + 67_811_239 + 113_502 + 5820 + 36_219
        );
    }

    #[test]
    fn ten_columns_linux_6_18() {
        let s = fixture(include_str!("fixtures/stat-6.18-10col"));
        assert_eq!(
            s.all,
            CpuTimes {
                user: 192_883,
                nice: 0,
                system: 27_675,
                idle: 194_286,
                iowait: Some(1199),
                irq: Some(0),
                softirq: Some(193),
                steal: Some(89),
                guest: Some(1402),
                guest_nice: Some(11),
            }
        );
        assert_eq!(s.cpus[1].1.guest_nice, Some(6));
        assert_eq!(s.btime, Some(1_795_620_000));
    }
}
