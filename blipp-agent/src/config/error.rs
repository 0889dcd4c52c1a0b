use std::borrow::Cow;
use std::path::PathBuf;

/// `text` with its control characters escaped (`\n`, `\u{1b}`), so that a
/// message stays one line whatever a probe's name or a file's path holds:
/// a name with a newline split the message over lines, and an escape
/// sequence could rewrite the operator's terminal.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Why a configuration was refused. Every variant names where the bad input
/// came from, so an operator of many hosts can fix it without guessing.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{}: line {line}, column {column}: not valid JSON: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// A value breaks the schema or a rule the schema cannot express.
    #[error("{origin}: {pointer}: {value} is invalid: {expected}")]
    Invalid {
        /// The file, or "command line", or "built-in defaults".
        origin: String,
        /// JSON pointer of the offending field (`/properties/configurations/...`).
        pointer: String,
        /// The offending value, as JSON (shortened when long).
        value: String,
        /// What was expected.
        expected: String,
    },
    /// A key to remove or walk through is not there.
    #[error("{origin}: {pointer}: no such key in the running configuration")]
    Missing {
        /// Where the request came from.
        origin: String,
        /// JSON pointer of the missing key.
        pointer: String,
    },
}

impl ConfigError {
    /// An [`ConfigError::Invalid`] for `value` at `pointer`.
    pub fn invalid(
        origin: &str,
        pointer: &str,
        value: &serde_json::Value,
        expected: impl Into<String>,
    ) -> Self {
        let mut value = value.to_string();
        if value.len() > 120 {
            let cut = (0..=117)
                .rev()
                .find(|i| value.is_char_boundary(*i))
                .unwrap_or(0);
            value.truncate(cut);
            value.push_str("...");
        }
        ConfigError::Invalid {
            origin: escape_controls(origin).into_owned(),
            pointer: if pointer.is_empty() {
                "/".to_owned()
            } else {
                escape_controls(pointer).into_owned()
            },
            value,
            expected: expected.into(),
        }
    }

    /// The same error naming `origin`: probes are built from a resolved
    /// configuration that no longer knows its file, so the caller that
    /// does (start-up, `--check`) names it, and the line a probe's build
    /// error gives is the line the file's other errors give.
    #[must_use]
    pub fn with_origin(self, origin: &str) -> Self {
        let origin = escape_controls(origin).into_owned();
        match self {
            ConfigError::Invalid {
                pointer,
                value,
                expected,
                ..
            } => ConfigError::Invalid {
                origin,
                pointer,
                value,
                expected,
            },
            ConfigError::Missing { pointer, .. } => ConfigError::Missing { origin, pointer },
            other => other,
        }
    }
}

/// A regex compilation error on one line: regex prints the pattern and a
/// caret under the fault on lines of their own, which a refusal (one line
/// per fault) cannot hold. Keeps the error and where it is
/// (`unclosed group at character 1`).
pub fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let Some(what) = lines.iter().rev().find_map(|l| l.strip_prefix("error: ")) else {
        return lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
    };
    // `regex parse error:`, the pattern, the carets, the error: the
    // pattern is on one line, indented by four spaces, and the carets
    // under it count characters.
    if let [_, _, carets, _] = lines.as_slice()
        && let Some(column) = carets.find('^')
        && carets.trim().chars().all(|c| c == '^')
        && column >= 4
    {
        let first = column - 3;
        let last = first + carets.trim().chars().count() - 1;
        return if first == last {
            format!("{what} at character {first}")
        } else {
            format!("{what} at characters {first}-{last}")
        };
    }
    what.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16: a probe named with a newline split the message in two.
    #[test]
    fn messages_stay_on_one_line() {
        let e = ConfigError::invalid(
            "f\u{1b}[2J.json",
            "/properties/configurations/probes/a\nb/probe_module",
            &serde_json::json!("gpu\n"),
            "expected one of cpu",
        );
        let text = e.to_string();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert_eq!(
            text,
            "f\\u{1b}[2J.json: /properties/configurations/probes/a\\nb/probe_module: \"gpu\\n\" is invalid: expected one of cpu"
        );
        assert!(matches!(escape_controls("plain"), Cow::Borrowed(_)));
    }

    /// Issue 16: regex errors took four lines.
    #[test]
    fn regex_errors_fit_on_one_line() {
        let e = |p: &str| regex_error(&regex::Regex::new(p).unwrap_err());
        assert_eq!(e("("), "unclosed group at character 1");
        assert_eq!(e("ab\\q"), "unrecognized escape sequence at characters 3-4");
        assert_eq!(e("a\n("), "unclosed group", "a pattern of two lines");
        let big = regex::RegexBuilder::new("\\w{1000}")
            .size_limit(100)
            .build()
            .unwrap_err();
        assert_eq!(regex_error(&big).lines().count(), 1);
    }

    #[test]
    fn with_origin_names_the_file() {
        let e = ConfigError::invalid("configuration", "/p", &serde_json::json!(1), "x")
            .with_origin("/etc/b\nlipp.json");
        assert_eq!(e.to_string(), "/etc/b\\nlipp.json: /p: 1 is invalid: x");
    }
}
