//! RFC 3339 / ISO 8601 date-times as [`Timestamp`]s: the time slots of
//! UNIS measurements (`scheduled_times`) and NetLogger's `ts` field.
//!
//! Parsed by jiff (its RFC 3339 / ISO 8601 / RFC 9557 grammar: `T`, `t`
//! or a space between date and time, any fraction, kept to microseconds,
//! offsets `Z`, `+HH:MM`, `+HHMM`). A date-time without an offset is UTC,
//! as the original BLiPP read such times; one with a time zone annotation
//! but no offset is refused rather than guessed. Times before 1970 cannot
//! be a [`Timestamp`] and are refused.

use crate::sample::Timestamp;

/// Why a date-time was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rfc3339Error {
    /// Not a date-time, or a field out of range (month 13, February 30).
    #[error("{text:?} is not an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.frac][Z|+HH:MM]): {why}")]
    Invalid {
        /// The text.
        text: String,
        /// jiff's reason.
        why: String,
    },
    /// Earlier than the Unix epoch.
    #[error("{0:?} is before 1970")]
    BeforeEpoch(String),
}

/// Parses a date-time.
pub fn parse(text: &str) -> Result<Timestamp, Rfc3339Error> {
    let t = text.trim();
    let invalid = |e: jiff::Error| Rfc3339Error::Invalid {
        text: text.to_owned(),
        why: e.to_string(),
    };
    let instant = match t.parse::<jiff::Timestamp>() {
        Ok(ts) => ts,
        // No offset: UTC. Not with an annotation, which names a zone
        // whose offset the text does not give.
        Err(e) if t.contains('[') => return Err(invalid(e)),
        Err(e) => t
            .parse::<jiff::civil::DateTime>()
            .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC))
            .map_err(|_| invalid(e))?
            .timestamp(),
    };
    u64::try_from(instant.as_microsecond())
        .map(Timestamp)
        .map_err(|_| Rfc3339Error::BeforeEpoch(text.to_owned()))
}

/// Formats `ts` as `YYYY-MM-DDTHH:MM:SSZ`, with a microsecond fraction only
/// when it has one (UNIS's own date-times have none). Instants past jiff's
/// range (the year 9999) are written as its last one.
pub fn format(ts: Timestamp) -> String {
    let t = i64::try_from(ts.0)
        .ok()
        .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        .unwrap_or(jiff::Timestamp::MAX);
    if ts.0.is_multiple_of(1_000_000) {
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
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
            "2014/05/01T12:00:00Z",
            "2014-05-01T12:00:00.Z",
            "2014-05-01T12:00:00+2",
            "2014-05-01T12:00:00Zjunk",
            "2014-05-01T12:00:00[Europe/Rome]",
            "",
            "2023-02-29T00:00:00Z",
            "2014-13-01T00:00:00Z",
            "2014-01-01T24:00:00Z",
        ] {
            assert!(
                matches!(parse(bad), Err(Rfc3339Error::Invalid { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            parse("1969-12-31T23:59:59Z"),
            Err(Rfc3339Error::BeforeEpoch(_))
        ));
    }

    #[test]
    fn iso_8601_shorter_forms_are_utc() {
        assert_eq!(secs("2014-05-01"), 1_398_902_400.0);
        assert_eq!(secs("2014-05-01T12:00"), 1_398_945_600.0);
        assert_eq!(
            secs("2014-05-01T14:00:00+02:00[Europe/Rome]"),
            1_398_945_600.0
        );
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
