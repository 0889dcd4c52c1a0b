//! `/proc/diskstats`, parsed by token count:
//!
//! | tokens | kernel | fields after major minor name |
//! |---|---|---|
//! | 7  | partitions before 2.6.25 | reads, sectors read, writes, sectors written |
//! | 14 | 2.6+ | 11 stats |
//! | 18 | 4.18+ | + discards completed, merged, sectors, ms |
//! | 20 | 5.5+  | + flushes completed, flush ms |
//!
//! Extra trailing tokens (future kernels) are ignored. Fields a layout
//! lacks are `None`.

use super::{ParseError, number};

/// One device's line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskStat {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Device name (`sda`, `nvme0n1p1`, `loop3`).
    pub name: String,
    /// Reads completed.
    pub reads: u64,
    /// Reads merged (None in the 7-token layout).
    pub reads_merged: Option<u64>,
    /// Sectors read.
    pub sectors_read: u64,
    /// Milliseconds spent reading (32-bit, wraps).
    pub read_ms: Option<u64>,
    /// Writes completed.
    pub writes: u64,
    /// Writes merged.
    pub writes_merged: Option<u64>,
    /// Sectors written.
    pub sectors_written: u64,
    /// Milliseconds spent writing (32-bit, wraps).
    pub write_ms: Option<u64>,
    /// I/Os currently in progress (a gauge).
    pub in_progress: Option<u64>,
    /// Milliseconds the device had I/O in flight (32-bit, wraps).
    pub io_ms: Option<u64>,
    /// Weighted milliseconds (32-bit, wraps).
    pub weighted_ms: Option<u64>,
    /// Discards completed (4.18+).
    pub discards: Option<u64>,
    /// Discards merged (4.18+).
    pub discards_merged: Option<u64>,
    /// Sectors discarded (4.18+).
    pub sectors_discarded: Option<u64>,
    /// Milliseconds spent discarding (4.18+, 32-bit).
    pub discard_ms: Option<u64>,
    /// Flushes completed (5.5+).
    pub flushes: Option<u64>,
    /// Milliseconds spent flushing (5.5+, 32-bit).
    pub flush_ms: Option<u64>,
}

/// Parses every line into `out` (cleared first, strings reused).
pub fn parse_into(text: &str, out: &mut Vec<DiskStat>) -> Result<(), ParseError> {
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let mut tokens = line.split_ascii_whitespace();
        let (Some(major), Some(minor), Some(name)) = (tokens.next(), tokens.next(), tokens.next())
        else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(ParseError::FieldCount {
                file: "diskstats",
                line: line_no,
                count: line.split_ascii_whitespace().count(),
                expected: "7, 14, 18 or 20 tokens",
            });
        };
        let mut fields = [""; 17];
        let mut count = 0;
        for token in tokens {
            if let Some(slot) = fields.get_mut(count) {
                *slot = token;
            }
            count += 1;
        }
        let tokens = count + 3;
        let stats = match tokens {
            7 => 4,
            14..=17 => 11,
            18 | 19 => 15,
            t if t >= 20 => 17,
            _ => {
                return Err(ParseError::FieldCount {
                    file: "diskstats",
                    line: line_no,
                    count: tokens,
                    expected: "7, 14, 18 or 20 tokens",
                });
            }
        };
        // Only the fields of the layout are numbers to parse: whatever a
        // later kernel appends is ignored.
        let mut v = [0u64; 17];
        for (slot, token) in v.iter_mut().zip(&fields[..stats]) {
            *slot = number("diskstats", line_no, token)?;
        }
        let major = u32::try_from(number("diskstats", line_no, major)?).unwrap_or(u32::MAX);
        let minor = u32::try_from(number("diskstats", line_no, minor)?).unwrap_or(u32::MAX);
        if out.len() == n {
            out.push(DiskStat::default());
        }
        let d = &mut out[n];
        d.major = major;
        d.minor = minor;
        if d.name != name {
            d.name.clear();
            d.name.push_str(name);
        }
        let opt = |k: usize| (k < stats).then_some(v[k]);
        if stats == 4 {
            d.reads = v[0];
            d.sectors_read = v[1];
            d.writes = v[2];
            d.sectors_written = v[3];
            d.reads_merged = None;
            d.read_ms = None;
            d.writes_merged = None;
            d.write_ms = None;
            d.in_progress = None;
            d.io_ms = None;
            d.weighted_ms = None;
        } else {
            d.reads = v[0];
            d.reads_merged = Some(v[1]);
            d.sectors_read = v[2];
            d.read_ms = Some(v[3]);
            d.writes = v[4];
            d.writes_merged = Some(v[5]);
            d.sectors_written = v[6];
            d.write_ms = Some(v[7]);
            d.in_progress = Some(v[8]);
            d.io_ms = Some(v[9]);
            d.weighted_ms = Some(v[10]);
        }
        d.discards = opt(11);
        d.discards_merged = opt(12);
        d.sectors_discarded = opt(13);
        d.discard_ms = opt(14);
        d.flushes = opt(15);
        d.flush_ms = opt(16);
        n += 1;
    }
    out.truncate(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_layouts() {
        let text = "   8       1 sda1 10 20 30 40
   8       0 sda 1 2 3 4 5 6 7 8 9 10 11
 259       0 nvme0n1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
 253       0 vda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17
 253       1 vdb 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 99 98
";
        let mut v = Vec::new();
        parse_into(text, &mut v).unwrap();
        assert_eq!(v.len(), 5);
        assert_eq!(
            (
                v[0].reads,
                v[0].sectors_read,
                v[0].writes,
                v[0].sectors_written
            ),
            (10, 20, 30, 40)
        );
        assert_eq!(v[0].read_ms, None);
        assert_eq!(v[1].weighted_ms, Some(11));
        assert_eq!(v[1].discards, None);
        assert_eq!(v[2].discard_ms, Some(15));
        assert_eq!(v[2].flushes, None);
        assert_eq!((v[3].flushes, v[3].flush_ms), (Some(16), Some(17)));
        assert_eq!(v[4].flush_ms, Some(17), "trailing fields ignored");
        assert!(parse_into("8 0 sda 1 2 3\n", &mut v).is_err());
    }

    fn fixture(text: &str) -> Vec<DiskStat> {
        let mut v = Vec::new();
        parse_into(text, &mut v).unwrap();
        v
    }

    #[test]
    fn linux_2_6_18_partitions_have_7_tokens() {
        let v = fixture(include_str!("fixtures/diskstats-2.6.18"));
        let names: Vec<&str> = v.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["ram0", "ram1", "sda", "sda1", "sda2", "md0"]);
        let sda = &v[2];
        assert_eq!(
            (sda.reads, sda.reads_merged, sda.sectors_read, sda.read_ms),
            (3_417_937, Some(246_474), 109_935_658, Some(22_619_513))
        );
        assert_eq!(
            (
                sda.writes,
                sda.writes_merged,
                sda.sectors_written,
                sda.write_ms
            ),
            (11_838_372, Some(31_049_669), 342_305_520, Some(178_011_412))
        );
        assert_eq!(
            (sda.in_progress, sda.io_ms, sda.weighted_ms),
            (Some(0), Some(47_271_034), Some(200_637_316))
        );
        let sda2 = &v[4];
        assert_eq!(
            (
                sda2.major,
                sda2.minor,
                sda2.reads,
                sda2.sectors_read,
                sda2.writes,
                sda2.sectors_written
            ),
            (8, 2, 3_416_558, 109_908_454, 42_888_193, 343_109_112)
        );
        assert_eq!(
            (sda2.reads_merged, sda2.read_ms, sda2.io_ms, sda2.discards),
            (None, None, None, None)
        );
    }

    #[test]
    fn linux_4_4_fourteen_tokens() {
        let v = fixture(include_str!("fixtures/diskstats-4.4"));
        assert_eq!(v.len(), 4);
        let sda = &v[1];
        assert_eq!(
            sda.read_ms,
            Some(4_294_967_000),
            "32-bit ms field near its wrap"
        );
        assert_eq!(sda.weighted_ms, Some(4_294_960_001));
        assert_eq!(sda.in_progress, Some(2));
        assert_eq!((sda.discards, sda.flushes), (None, None));
        assert_eq!(v[3].name, "sr0");
    }

    #[test]
    fn linux_4_19_eighteen_tokens() {
        let v = fixture(include_str!("fixtures/diskstats-4.19"));
        let sda = &v[0];
        assert_eq!(
            (
                sda.discards,
                sda.discards_merged,
                sda.sectors_discarded,
                sda.discard_ms
            ),
            (Some(1200), Some(0), Some(2_458_624), Some(3112))
        );
        assert_eq!((sda.flushes, sda.flush_ms), (None, None));
        assert_eq!(
            (v[2].major, v[2].name.as_str(), v[2].in_progress),
            (259, "nvme0n1", Some(1))
        );
    }

    #[test]
    fn linux_6_18_twenty_tokens() {
        let v = fixture(include_str!("fixtures/diskstats-6.18"));
        let vda = &v[2];
        assert_eq!(
            *vda,
            DiskStat {
                major: 254,
                minor: 0,
                name: "vda".to_owned(),
                reads: 225_359,
                reads_merged: Some(12_108),
                sectors_read: 14_619_890,
                read_ms: Some(360_923),
                writes: 30_354,
                writes_merged: Some(86_026),
                sectors_written: 33_896_656,
                write_ms: Some(273_960),
                in_progress: Some(0),
                io_ms: Some(31_836),
                weighted_ms: Some(641_091),
                discards: Some(18_762),
                discards_merged: Some(92),
                sectors_discarded: Some(2_714_520),
                discard_ms: Some(6133),
                flushes: Some(1224),
                flush_ms: Some(73),
            }
        );
        assert_eq!((v[3].name.as_str(), v[3].flushes), ("vda1", Some(0)));
    }

    #[test]
    fn future_trailing_fields_are_ignored_unparsed() {
        let v = fixture(include_str!("fixtures/diskstats-future"));
        assert_eq!((v[0].flushes, v[0].flush_ms), (Some(77), Some(88)));
    }
}
