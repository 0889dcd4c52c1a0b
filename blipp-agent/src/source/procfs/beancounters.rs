//! `/proc/user_beancounters`: OpenVZ's per-container resource accounting.
//! A `Version:` line, a header (`uid resource held maxheld barrier limit
//! failcnt`), then one line per resource; the first line of each
//! container's block starts with its id (`101:`).
//!
//! blipp reads what the original BLiPP read from it: the `held` column of
//! `kmemsize` (bytes of kernel memory) and `physpages` (pages of RAM).
//! When several containers are listed (the host's own view), the last one
//! wins, as it did in the original.

use super::{ParseError, number};

/// The container's held resources blipp reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Beancounters {
    /// `kmemsize` held, bytes.
    pub kmemsize: Option<u64>,
    /// `physpages` held, pages.
    pub physpages: Option<u64>,
}

/// Parses the whole file.
pub fn parse(text: &str) -> Result<Beancounters, ParseError> {
    let mut b = Beancounters::default();
    for (i, line) in text.lines().enumerate() {
        let mut tokens = line.split_ascii_whitespace();
        let Some(first) = tokens.next() else { continue };
        // Skip the container id that opens a block.
        let resource = if first.ends_with(':') {
            match tokens.next() {
                Some(r) => r,
                None => continue,
            }
        } else {
            first
        };
        let slot = match resource {
            "kmemsize" => &mut b.kmemsize,
            "physpages" => &mut b.physpages,
            _ => continue,
        };
        let held = tokens.next().ok_or(ParseError::Missing {
            file: "user_beancounters",
            what: "the held value of a resource",
        })?;
        *slot = Some(number("user_beancounters", i + 1, held)?);
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_blipp_vector() {
        let b = parse(include_str!("fixtures/original/user_beancounters")).unwrap();
        assert_eq!(
            b,
            Beancounters {
                kmemsize: Some(61_925_780),
                physpages: Some(1_173_286),
            }
        );
    }

    #[test]
    fn several_containers_and_errors() {
        let text = "Version: 2.5
       uid  resource                     held              maxheld              barrier                limit              failcnt
      101:  kmemsize                  1000                 2000  9223372036854775807  9223372036854775807                    0
            physpages                    10                   20  9223372036854775807  9223372036854775807                    0
      102:  kmemsize                  3000                 4000  9223372036854775807  9223372036854775807                    0
            physpages                    30                   40  9223372036854775807  9223372036854775807                    0
";
        assert_eq!(
            parse(text).unwrap(),
            Beancounters {
                kmemsize: Some(3000),
                physpages: Some(30)
            }
        );
        assert_eq!(parse("Version: 2.5\n").unwrap(), Beancounters::default());
        assert!(parse("  7: kmemsize\n").is_err());
        assert!(parse("physpages many\n").is_err());
    }
}
