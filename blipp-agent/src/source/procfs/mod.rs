//! Pure parsers of the kernel's text formats: `&str` in, typed records out.
//! Nothing here touches the file system, so every kernel layout is a unit
//! test with a fixture.

pub mod beancounters;
pub mod diskstats;
pub mod loadavg;
pub mod meminfo;
pub mod netdev;
pub mod numa;
pub mod pid_status;
pub mod pressure;
#[cfg(test)]
mod robust;
pub mod snmp;
pub mod stat;

/// A kernel file that does not have the expected shape.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// A mandatory line or field is absent.
    #[error("{file}: missing {what}")]
    Missing {
        /// The kernel file, e.g. `"stat"`.
        file: &'static str,
        /// What was looked for.
        what: &'static str,
    },
    /// A token that should be a number is not one.
    #[error("{file}: line {line}: {token:?} is not a number")]
    BadNumber {
        /// The kernel file.
        file: &'static str,
        /// 1-based line number.
        line: usize,
        /// The offending token (truncated).
        token: String,
    },
    /// A line has a field count no known kernel prints.
    #[error("{file}: line {line}: {count} fields, expected {expected}")]
    FieldCount {
        /// The kernel file.
        file: &'static str,
        /// 1-based line number.
        line: usize,
        /// Fields found.
        count: usize,
        /// What the known layouts have.
        expected: &'static str,
    },
    /// A value no real kernel can print (see [`crate::plausible`]).
    #[error("{file}: {detail}")]
    Implausible {
        /// The kernel file.
        file: &'static str,
        /// The field, its value and its bound (one string: this error is
        /// in every probe's result, whose size clippy watches).
        detail: String,
    },
}

/// Parses a size in kB, `key`'s value on `line`, within
/// [`crate::plausible::MEMORY_KB_MAX`].
pub(crate) fn kilobytes(
    file: &'static str,
    line: usize,
    key: &str,
    token: &str,
) -> Result<u64, ParseError> {
    let kb = number(file, line, token)?;
    if kb > crate::plausible::MEMORY_KB_MAX {
        return Err(ParseError::Implausible {
            file,
            detail: format!(
                "a size in kB {}: {kb} is implausible (at most {})",
                key.chars().take(32).collect::<String>(),
                crate::plausible::MEMORY_KB_MAX
            ),
        });
    }
    Ok(kb)
}

/// Parses a decimal counter token.
pub(crate) fn number(file: &'static str, line: usize, token: &str) -> Result<u64, ParseError> {
    digits(token.as_bytes()).ok_or_else(|| ParseError::BadNumber {
        file,
        line,
        token: token.chars().take(32).collect(),
    })
}

/// The value of a run of ASCII digits; `None` for anything else, for more
/// than 20 digits and beyond `u64::MAX`. The kernel prints counters as
/// plain digits (no sign, no leading zeros), hundreds of them per
/// collection, so this skips what `str::parse` checks on every digit:
/// nineteen digits cannot overflow, only a twentieth is checked.
fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let (head, tail) = bytes.split_at(bytes.len().min(19));
    let mut value: u64 = 0;
    for &b in head {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        value = value * 10 + u64::from(d);
    }
    for &b in tail {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// What `str::parse` says, for every token the kernel can print
        /// (digits, up to 20 of them) and for garbage.
        #[test]
        fn digits_agree_with_parse(token in "[0-9]{1,20}|[0-9+ a-z.-]{0,22}") {
            let expected = if token.starts_with('+') || token.len() > 20 {
                None
            } else {
                token.parse::<u64>().ok()
            };
            prop_assert_eq!(digits(token.as_bytes()), expected);
        }
    }

    #[test]
    fn the_edges_of_u64() {
        assert_eq!(digits(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(digits(b"18446744073709551616"), None);
        assert_eq!(digits(b"99999999999999999999"), None);
        assert_eq!(
            digits(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(digits(b"0"), Some(0));
        assert_eq!(digits(b""), None);
        assert_eq!(digits(b"+1"), None);
        assert_eq!(
            number("stat", 3, "12x"),
            Err(ParseError::BadNumber {
                file: "stat",
                line: 3,
                token: "12x".to_owned()
            })
        );
    }
}
