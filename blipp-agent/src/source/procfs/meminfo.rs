//! `/proc/meminfo`: `Key:   12345 kB` lines. Which keys exist depends on the
//! kernel (`MemAvailable` is 3.14+), so every field is optional.

use super::{ParseError, number};

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

/// Parses the whole file.
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
        *slot = Some(number("meminfo", i + 1, token)?);
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
}
