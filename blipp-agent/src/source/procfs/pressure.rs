//! `/proc/pressure/{cpu,memory,io}` (pressure stall information, Linux
//! 4.20+): one line per kind of stall,
//! `some avg10=0.69 avg60=7.02 avg300=5.52 total=188123832`, the averages
//! in percent of wall time, `total` the stalled time in microseconds since
//! boot. The cpu file has a `full` line only from 5.13, so each line is
//! optional; a file with neither is refused.

use super::{ParseError, number};

/// One line: the share of time some (or all) non-idle tasks were stalled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stall {
    /// Over the last 10 s, as a fraction (the file gives percent).
    pub avg10: f64,
    /// Over the last 60 s.
    pub avg60: f64,
    /// Over the last 300 s.
    pub avg300: f64,
    /// Stalled time since boot, µs: a cumulative counter.
    pub total_us: u64,
}

/// A pressure file.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pressure {
    /// At least one task stalled.
    pub some: Option<Stall>,
    /// Every non-idle task stalled at once.
    pub full: Option<Stall>,
}

const FILE: &str = "pressure";

/// Parses a pressure file.
pub fn parse(text: &str) -> Result<Pressure, ParseError> {
    let mut p = Pressure::default();
    for (i, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let slot = match fields.next() {
            Some("some") => &mut p.some,
            Some("full") => &mut p.full,
            _ => continue,
        };
        *slot = Some(stall(i + 1, fields)?);
    }
    if p.some.is_none() && p.full.is_none() {
        return Err(ParseError::Missing {
            file: FILE,
            what: "a some or full line",
        });
    }
    Ok(p)
}

/// The `key=value` fields of one line; all four are required.
fn stall<'a>(line: usize, fields: impl Iterator<Item = &'a str>) -> Result<Stall, ParseError> {
    let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        match key {
            "avg10" => avg10 = Some(fraction(line, value)?),
            "avg60" => avg60 = Some(fraction(line, value)?),
            "avg300" => avg300 = Some(fraction(line, value)?),
            "total" => total = Some(number(FILE, line, value)?),
            _ => {}
        }
    }
    match (avg10, avg60, avg300, total) {
        (Some(avg10), Some(avg60), Some(avg300), Some(total_us)) => Ok(Stall {
            avg10,
            avg60,
            avg300,
            total_us,
        }),
        _ => Err(ParseError::Missing {
            file: FILE,
            what: "avg10, avg60, avg300 and total",
        }),
    }
}

/// A percentage as the kernel prints it (`LOAD_INT.LOAD_FRAC`, 0.00 to
/// 100.00), as a fraction.
fn fraction(line: usize, token: &str) -> Result<f64, ParseError> {
    let percent = token
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| ParseError::BadNumber {
            file: FILE,
            line,
            token: token.chars().take(32).collect(),
        })?;
    if percent > 100.0 {
        return Err(ParseError::Implausible {
            file: FILE,
            detail: format!(
                "line {line}: {} percent is implausible (at most 100)",
                token.chars().take(32).collect::<String>()
            ),
        });
    }
    Ok(percent / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IO: &str = include_str!("fixtures/pressure-io-6.18");
    const CPU_4_20: &str = include_str!("fixtures/pressure-cpu-4.20");

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn some_and_full_as_fractions() {
        let p = parse(IO).unwrap();
        let some = p.some.unwrap();
        assert!(close(some.avg10, 0.0069), "{some:?}");
        assert!(close(some.avg60, 0.0702), "{some:?}");
        assert!(close(some.avg300, 0.0552), "{some:?}");
        assert_eq!(some.total_us, 188_123_832);
        let full = p.full.unwrap();
        assert!(close(full.avg300, 0.0449), "{full:?}");
        assert_eq!(full.total_us, 87_964_628);
    }

    /// Before 5.13 the cpu file has no `full` line: none is made up.
    #[test]
    fn cpu_before_5_13_has_no_full_line() {
        let p = parse(CPU_4_20).unwrap();
        assert!(p.some.is_some());
        assert_eq!(p.full, None);
    }

    #[test]
    fn refuses_what_no_kernel_prints() {
        assert!(parse("").is_err());
        assert!(parse("some avg10=1.00 avg60=1.00 total=5\n").is_err());
        assert!(parse("some avg10=x avg60=1.00 avg300=1.00 total=5\n").is_err());
        assert!(parse("some avg10=-1 avg60=1.00 avg300=1.00 total=5\n").is_err());
        assert!(parse("some avg10=1.00 avg60=1.00 avg300=1.00 total=-5\n").is_err());
        let e = parse("some avg10=100.01 avg60=1.00 avg300=1.00 total=5\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "pressure: line 1: 100.01 percent is implausible (at most 100)"
        );
        let all = parse("full avg10=100.00 avg60=100.00 avg300=100.00 total=5\n").unwrap();
        assert_eq!(all.full.map(|f| f.avg10), Some(1.0));
    }
}
