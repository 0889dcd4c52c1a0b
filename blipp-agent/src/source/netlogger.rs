//! NetLogger "best practices" log lines, as the original BLiPP's
//! `netlogger_probe` read them: `key=value` pairs split like a shell
//! command line (`msg="two words"`), with `ts` (an ISO 8601 / RFC 3339
//! time, or Unix seconds) and `event` (a dotted name):
//!
//! ```text
//! ts=2013-04-16T20:43:29.123456Z event=transfer.rate VAL=1250.5 host=a
//! ts=2013-04-16T20:43:30Z event=transfer.end bytes=1048576 level=Info
//! ```
//!
//! A line with a `VAL` key carries one value: `VAL` for the event. A line
//! without one (the original called these "calipers") carries one value
//! per other key: `bytes` for `transfer.end:bytes`, `level` for
//! `transfer.end:level`. Whether a value is a number is the probe's
//! business; this module only splits the line.

use crate::rfc3339;
use crate::sample::Timestamp;
use crate::source::words::{self, WordsError};

/// Why a line was not read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LineError {
    /// The quoting is broken.
    #[error("quoting: {0}")]
    Words(#[from] WordsError),
    /// No `ts` key.
    #[error("no ts")]
    NoTs,
    /// `ts` is neither a date-time nor Unix seconds.
    #[error("ts {0:?} is neither an ISO 8601 time nor Unix seconds")]
    BadTs(String),
    /// No `event` key, or an empty one.
    #[error("no event")]
    NoEvent,
}

/// One log line.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// When it happened.
    pub ts: Timestamp,
    /// The event name.
    pub event: String,
    /// The values: `(None, VAL)` for a `VAL` line, else `(Some(key),
    /// value)` for each key but `ts` and `event`, in order.
    pub values: Vec<(Option<String>, String)>,
}

/// A `ts` value: a date-time, or Unix seconds with a fraction.
fn timestamp(text: &str) -> Result<Timestamp, LineError> {
    if let Ok(ts) = rfc3339::parse(text) {
        return Ok(ts);
    }
    match text.parse::<f64>() {
        Ok(s) if (0.0..1e11).contains(&s) => Ok(Timestamp((s * 1e6).round() as u64)),
        _ => Err(LineError::BadTs(text.to_owned())),
    }
}

/// Parses one line; `Ok(None)` for a blank line or a `#` comment.
pub fn parse_line(line: &str) -> Result<Option<Record>, LineError> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let mut ts = None;
    let mut event = None;
    let mut val = None;
    let mut fields = Vec::new();
    for word in words::split(trimmed)? {
        let (key, value) = word.split_once('=').unwrap_or((word.as_str(), ""));
        match key {
            "ts" => ts = Some(timestamp(value)?),
            "event" => event = Some(value.to_owned()),
            "VAL" => val = Some(value.to_owned()),
            _ => fields.push((Some(key.to_owned()), value.to_owned())),
        }
    }
    let ts = ts.ok_or(LineError::NoTs)?;
    let event = event.filter(|e| !e.is_empty()).ok_or(LineError::NoEvent)?;
    let values = match val {
        Some(v) => vec![(None, v)],
        None => fields,
    };
    Ok(Some(Record { ts, event, values }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixture() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/source/fixtures/netlogger.log"
        ))
        .unwrap()
    }

    fn values(pairs: &[(Option<&str>, &str)]) -> Vec<(Option<String>, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.map(str::to_owned), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fixture_lines() {
        let text = fixture();
        let parsed: Vec<Result<Option<Record>, LineError>> = text.lines().map(parse_line).collect();
        let records: Vec<&Record> = parsed
            .iter()
            .filter_map(|r| r.as_ref().ok()?.as_ref())
            .collect();
        assert_eq!(
            *records[0],
            Record {
                ts: Timestamp(1_366_145_009_123_456),
                event: "transfer.rate".to_owned(),
                values: values(&[(None, "1250.5")]),
            }
        );
        assert_eq!(
            *records[1],
            Record {
                ts: Timestamp(1_366_145_010_000_000),
                event: "transfer.end".to_owned(),
                values: values(&[
                    (Some("bytes"), "1048576"),
                    (Some("level"), "Info"),
                    (Some("msg"), "done at last")
                ]),
            }
        );
        // Unix seconds, and an offset.
        assert_eq!(records[2].ts, Timestamp(1_366_145_011_500_000));
        assert_eq!(records[3].ts, Timestamp(1_366_145_012_000_000));
        // "INTERVAL" contains VAL but is not the VAL key.
        assert_eq!(records[3].values, values(&[(Some("INTERVAL"), "5")]));
        assert_eq!(records.len(), 4);
        let errors: Vec<&LineError> = parsed.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(
            errors,
            [
                &LineError::NoTs,
                &LineError::BadTs("yesterday".to_owned()),
                &LineError::NoEvent,
                &LineError::Words(WordsError::Unterminated('"')),
            ]
        );
    }

    proptest! {
        #[test]
        fn never_panics(line in ".{0,120}") {
            let _ = parse_line(&line);
        }

        #[test]
        fn never_panics_on_netlogger_like_lines(line in "(ts=[0-9T:.Z-]{0,24} )?(event=[a-z.]{0,8} )?([A-Za-z]{1,4}=[\"'a-z0-9. ]{0,8} ){0,4}") {
            let _ = parse_line(&line);
        }
    }
}
