//! RFC 3339 / ISO 8601 date-times as [`Timestamp`]s: the time slots of
//! UNIS measurements (`scheduled_times`) and NetLogger's `ts` field.
//!
//! Accepted: `YYYY-MM-DD` then `T`, `t` or a space, then `HH:MM:SS`, an
//! optional fraction (any number of digits, kept to microseconds), and an
//! offset `Z`, `z`, `+HH:MM`, `-HH:MM` or `+HHMM`. A time without an
//! offset is UTC, as the original BLiPP read such times. Times before
//! 1970 cannot be a [`Timestamp`] and are refused.

use crate::sample::Timestamp;

/// Why a date-time was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rfc3339Error {
    /// Not of the form above.
    #[error("{0:?} is not an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.frac][Z|+HH:MM])")]
    Syntax(String),
    /// A field is out of range (month 13, February 30, hour 24, ...).
    #[error("{0:?} is not a valid date-time (a field is out of range)")]
    Range(String),
    /// Earlier than the Unix epoch.
    #[error("{0:?} is before 1970")]
    BeforeEpoch(String),
}

/// Reads the decimal digits at `s[at..at + n]`.
fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let field = s.get(at..at + n)?;
    field.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// Days from 1970-01-01 to `y-m-d` in the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses a date-time.
pub fn parse(text: &str) -> Result<Timestamp, Rfc3339Error> {
    let syntax = || Rfc3339Error::Syntax(text.to_owned());
    let s = text.trim().as_bytes();
    let field = |at, n| digits(s, at, n).ok_or_else(syntax);
    let (year, month, day) = (field(0, 4)?, field(5, 2)?, field(8, 2)?);
    let (hour, minute, second) = (field(11, 2)?, field(14, 2)?, field(17, 2)?);
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| s.get(i) != Some(&c))
        || !matches!(s.get(10), Some(b'T' | b't' | b' '))
    {
        return Err(syntax());
    }
    let mut at = 19;
    let mut micros = 0u64;
    if s.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while s.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 6 {
                micros = micros * 10 + u64::from(s[at] - b'0');
            }
            at += 1;
        }
        if at == start {
            return Err(syntax());
        }
        for _ in (at - start)..6 {
            micros *= 10;
        }
    }
    let offset_minutes: i64 = match s.get(at) {
        None => 0,
        Some(b'Z' | b'z') if s.len() == at + 1 => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let h = field(at + 1, 2)?;
            let m = match (s.len() - at, s.get(at + 3)) {
                (6, Some(b':')) => field(at + 4, 2)?,
                (5, _) => field(at + 3, 2)?,
                _ => return Err(syntax()),
            };
            if h > 23 || m > 59 {
                return Err(Rfc3339Error::Range(text.to_owned()));
            }
            let minutes = i64::from(h * 60 + m);
            if sign == b'+' { minutes } else { -minutes }
        }
        Some(_) => return Err(syntax()),
    };
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(Rfc3339Error::Range(text.to_owned()));
    }
    let days = days_from_civil(i64::from(year), month, day);
    let seconds =
        days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60;
    let seconds = u64::try_from(seconds).map_err(|_| Rfc3339Error::BeforeEpoch(text.to_owned()))?;
    Ok(Timestamp(seconds * 1_000_000 + micros))
}

/// Formats `ts` as `YYYY-MM-DDTHH:MM:SSZ`, with a microsecond fraction only
/// when it has one (UNIS's own date-times have none).
pub fn format(ts: Timestamp) -> String {
    let seconds = ts.0 / 1_000_000;
    let micros = ts.0 % 1_000_000;
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX);
    let rem = seconds % 86_400;
    // Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if micros == 0 {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{micros:06}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(text: &str) -> f64 {
        parse(text).unwrap().0 as f64 / 1e6
    }

    #[test]
    fn known_instants() {
        // `date -u -d ... +%s.%N` for each.
        assert_eq!(secs("1970-01-01T00:00:00Z"), 0.0);
        assert_eq!(secs("2014-05-01T12:00:00Z"), 1_398_945_600.0);
        assert_eq!(secs("2014-05-01T12:00:00"), 1_398_945_600.0);
        assert_eq!(secs("2014-05-01 14:00:00+02:00"), 1_398_945_600.0);
        assert_eq!(secs("2014-05-01T07:30:00-0430"), 1_398_945_600.0);
        assert_eq!(secs("2024-02-29t23:59:59.5z"), 1_709_251_199.5);
        assert_eq!(
            parse("2013-04-16T20:43:29.1234567Z").unwrap(),
            Timestamp(1_366_145_009_123_456)
        );
    }

    #[test]
    fn refused() {
        for bad in [
            "2014-05-01",
            "2014-05-01T12:00",
            "2014/05/01T12:00:00Z",
            "2014-05-01T12:00:00.Z",
            "2014-05-01T12:00:00+2",
            "2014-05-01T12:00:00Zjunk",
            "",
        ] {
            assert!(matches!(parse(bad), Err(Rfc3339Error::Syntax(_))), "{bad}");
        }
        for bad in [
            "2023-02-29T00:00:00Z",
            "2014-13-01T00:00:00Z",
            "2014-01-01T24:00:00Z",
        ] {
            assert!(matches!(parse(bad), Err(Rfc3339Error::Range(_))), "{bad}");
        }
        assert!(matches!(
            parse("1969-12-31T23:59:59Z"),
            Err(Rfc3339Error::BeforeEpoch(_))
        ));
    }

    #[test]
    fn formats() {
        assert_eq!(
            format(Timestamp(1_398_945_600_000_000)),
            "2014-05-01T12:00:00Z"
        );
        assert_eq!(
            format(Timestamp(1_709_251_199_500_000)),
            "2024-02-29T23:59:59.500000Z"
        );
    }

    proptest! {
        #[test]
        fn round_trip(us in 0u64..8_000_000_000_000_000) {
            prop_assert_eq!(parse(&format(Timestamp(us))).unwrap(), Timestamp(us));
        }

        #[test]
        fn never_panics(text in ".{0,40}") {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_near_valid(text in "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,9})?([Zz]|[+-][0-9]{2}:?[0-9]{2})?") {
            let _ = parse(&text);
        }
    }
}
