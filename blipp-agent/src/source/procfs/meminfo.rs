//! `/proc/meminfo`: `Key:   12345 kB` lines. Which keys exist depends on the
//! kernel (`MemAvailable` is 3.14+), so every field is optional.

use super::{ParseError, kilobytes};

/// The meminfo lines blipp reports, in kB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meminfo {
    /// `MemTotal`.
    pub total: Option<u64>,
    /// `MemFree`.
    pub free: Option<u64>,
    /// `MemAvailable` (3.14+).
    pub available: Option<u64>,
    /// `Buffers`.
    pub buffers: Option<u64>,
    /// `Cached`.
    pub cached: Option<u64>,
    /// `Slab`: the original BLiPP's "kernel" memory.
    pub slab: Option<u64>,
    /// `SwapTotal`.
    pub swap_total: Option<u64>,
    /// `SwapFree`.
    pub swap_free: Option<u64>,
    /// `Dirty`.
    pub dirty: Option<u64>,
}

impl Meminfo {
    fn all_found(&self) -> bool {
        [
            self.total,
            self.free,
            self.available,
            self.buffers,
            self.cached,
            self.slab,
            self.swap_total,
            self.swap_free,
            self.dirty,
        ]
        .iter()
        .all(Option::is_some)
    }
}

/// Parses the file, up to the last line blipp reports.
pub fn parse(text: &str) -> Result<Meminfo, ParseError> {
    let mut m = Meminfo::default();
    for (i, line) in text.lines().enumerate() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut m.total,
            "MemFree" => &mut m.free,
            "MemAvailable" => &mut m.available,
            "Buffers" => &mut m.buffers,
            "Cached" => &mut m.cached,
            "Slab" => &mut m.slab,
            "SwapTotal" => &mut m.swap_total,
            "SwapFree" => &mut m.swap_free,
            "Dirty" => &mut m.dirty,
            _ => continue,
        };
        let token = rest
            .split_ascii_whitespace()
            .next()
            .ok_or(ParseError::Missing {
                file: "meminfo",
                what: "a value after a key",
            })?;
        *slot = Some(kilobytes("meminfo", i + 1, key, token)?);
        // The kernel prints these in the first half of the file (Slab,
        // the last, around line 25 of 55): the rest need not be looked at.
        if m.all_found() {
            break;
        }
    }
    if m.total.is_none() || m.free.is_none() {
        return Err(ParseError::Missing {
            file: "meminfo",
            what: "MemTotal and MemFree",
        });
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_lines() {
        let m = parse("MemTotal:  100 kB\nMemFree:    40 kB\nBuffers: 5 kB\n").unwrap();
        assert_eq!(m.total, Some(100));
        assert_eq!(m.available, None);
        assert_eq!(m.buffers, Some(5));
        assert!(parse("MemFree: 4 kB\n").is_err());
        assert!(parse("MemTotal: x kB\nMemFree: 1 kB\n").is_err());
    }

    #[test]
    fn absurd_sizes_are_refused() {
        use crate::plausible::MEMORY_KB_MAX;
        let e = parse("MemTotal: 100 kB\nMemFree: 18446744073709551615 kB\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "meminfo: a size in kB MemFree: 18446744073709551615 is implausible (at most 140737488355328)"
        );
        let max = format!("MemTotal: {MEMORY_KB_MAX} kB\nMemFree: 1 kB\n");
        assert!(parse(&max).is_ok());
    }

    #[test]
    fn linux_2_4_without_slab_dirty_available() {
        // 2.4 opens with a table in bytes (`Mem:`, `Swap:`), then kB lines.
        let m = parse(include_str!("fixtures/meminfo-2.4")).unwrap();
        assert_eq!(
            m,
            Meminfo {
                total: Some(1_026_100),
                free: Some(37_756),
                available: None,
                buffers: Some(66_860),
                cached: Some(532_964),
                slab: None,
                swap_total: Some(2_096_472),
                swap_free: Some(2_096_416),
                dirty: None,
            }
        );
    }

    #[test]
    fn linux_2_6_18_without_available() {
        let m = parse(include_str!("fixtures/meminfo-2.6.18")).unwrap();
        assert_eq!(
            m,
            Meminfo {
                total: Some(4_046_908),
                free: Some(179_480),
                available: None,
                buffers: Some(160_272),
                cached: Some(3_135_924),
                slab: Some(297_828),
                swap_total: Some(2_096_472),
                swap_free: Some(2_091_172),
                dirty: Some(1288),
            }
        );
    }

    #[test]
    fn linux_6_18_every_line() {
        let m = parse(include_str!("fixtures/meminfo-6.18")).unwrap();
        assert_eq!(
            m,
            Meminfo {
                total: Some(24_684_084),
                free: Some(12_226_940),
                available: Some(22_921_240),
                buffers: Some(38_300),
                cached: Some(10_576_788),
                slab: Some(480_644),
                swap_total: Some(0),
                swap_free: Some(0),
                dirty: Some(406_928),
            }
        );
    }

    #[test]
    fn original_blipp_vector() {
        let m = parse(include_str!("fixtures/original/meminfo")).unwrap();
        assert_eq!(
            (m.total, m.free, m.buffers, m.cached, m.slab),
            (
                Some(8_127_964),
                Some(525_460),
                Some(358_700),
                Some(4_390_548),
                Some(401_292)
            )
        );
        assert_eq!(
            (m.swap_total, m.swap_free, m.dirty, m.available),
            (Some(5_105_656), Some(5_104_120), Some(96), None)
        );
    }
}
