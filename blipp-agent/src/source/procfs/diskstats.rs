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
        let mut v = [0u64; 17];
        let mut count = 0;
        for token in tokens {
            if count < v.len() {
                v[count] = number("diskstats", line_no, token)?;
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
}
