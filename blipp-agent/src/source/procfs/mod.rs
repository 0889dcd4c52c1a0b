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
}

/// Parses a decimal counter token.
pub(crate) fn number(file: &'static str, line: usize, token: &str) -> Result<u64, ParseError> {
    token.parse().map_err(|_| ParseError::BadNumber {
        file,
        line,
        token: token.chars().take(32).collect(),
    })
}
