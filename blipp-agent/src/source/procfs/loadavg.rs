//! `/proc/loadavg`: `0.20 0.18 0.12 1/80 11206`.

use super::ParseError;
use crate::plausible::LOAD_MAX;

/// The three load averages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadAvg {
    /// 1-minute average.
    pub one: f64,
    /// 5-minute average.
    pub five: f64,
    /// 15-minute average.
    pub fifteen: f64,
}

/// Parses the first three fields.
pub fn parse(text: &str) -> Result<LoadAvg, ParseError> {
    let mut it = text.split_ascii_whitespace();
    let mut next = |what| {
        let token = it.next().ok_or(ParseError::Missing {
            file: "loadavg",
            what,
        })?;
        let value = token
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| ParseError::BadNumber {
                file: "loadavg",
                line: 1,
                token: token.chars().take(32).collect(),
            })?;
        if value > LOAD_MAX {
            return Err(ParseError::Implausible {
                file: "loadavg",
                detail: format!(
                    "{what} {} is implausible (at most {LOAD_MAX})",
                    token.chars().take(32).collect::<String>()
                ),
            });
        }
        Ok(value)
    };
    Ok(LoadAvg {
        one: next("1-minute load")?,
        five: next("5-minute load")?,
        fifteen: next("15-minute load")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let l = parse("0.20 0.18 0.12 1/80 11206\n").unwrap();
        assert_eq!((l.one, l.five, l.fifteen), (0.20, 0.18, 0.12));
        assert!(parse("0.20 nan 0.1").is_err());
        assert!(parse("").is_err());
    }

    /// Issue 16: 1e29 from a mutated file was reported as a load.
    #[test]
    fn absurd_loads_are_refused() {
        let e = parse("1e29 0.1 0.1 1/80 11206").unwrap_err().to_string();
        assert_eq!(
            e,
            "loadavg: 1-minute load 1e29 is implausible (at most 4194304)"
        );
        assert!(parse("0.1 0.1 4194305 1/80 1").is_err());
        assert!(parse("4194304 0 0 1/80 1").is_ok());
    }
}
