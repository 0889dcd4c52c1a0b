//! Units the kernel's text files are written in, from `sysconf(3)`.

/// `USER_HZ`: the unit of /proc/stat's CPU times, from the kernel's
/// auxiliary vector (`sysconf(_SC_CLK_TCK)`); 100 when that fails, as on
/// every architecture but alpha.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100)
}

/// The kernel's page size in bytes (`sysconf(_SC_PAGESIZE)`); 4096 when
/// that fails.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sysconf_values_match_proc() {
        // /proc/self/smaps names the page size of the mappings it lists.
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let kb: u64 = smaps
            .lines()
            .find_map(|l| l.strip_prefix("KernelPageSize:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        assert_eq!(super::page_size(), kb * 1024);
        // The process's start time in /proc/self/stat is in USER_HZ ticks
        // since boot; this test process started moments ago.
        let uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        let start: f64 = after_comm
            .split_whitespace()
            .nth(19)
            .unwrap()
            .parse()
            .unwrap();
        let age = uptime - start / super::clock_ticks_per_second() as f64;
        assert!(
            (-1.0..3600.0).contains(&age),
            "process age {age} s: USER_HZ is wrong"
        );
    }
}
