//! The original BLiPP's command-line probe (`cmd_line_probe`): runs a
//! configured command at each collection and turns the named capture
//! groups of a regular expression over its standard output into samples.
//!
//! ```json
//! "ping": {
//!   "probe_module": "cmd",
//!   "command": "ping -c 1 $-W $address",
//!   "address": "127.0.0.1", "-W": 2,
//!   "regex": "ttl=(?P<ttl>\\d+).*time=(?P<rtt>\\d+\\.\\d+) ",
//!   "eventTypes": { "ttl": "ps:tools:blipp:linux:net:ping:ttl",
//!                   "rtt": "ps:tools:blipp:linux:net:ping:rtt" }
//! }
//! ```
//!
//! How the command runs (no shell, clean environment, timeout, output
//! limit) is [`crate::source::command`]'s; how `$key` words are filled in
//! is [`crate::source::command::argv`]'s. The regex is matched as the
//! original compiled it (`re.S | re.M`: `.` matches newlines, `^`/`$` match
//! at line ends), once per collection; each group listed in `eventTypes`
//! that matched a number gives one sample of the node. A group that matched
//! something else (`unknown`, `-`) gives none (logged at debug level): a
//! value that was not measured is not reported.

use serde::Deserialize;
use std::collections::BTreeMap;

use super::command::{self, CommandKeys};
use super::{BuildContext, Built, Fallback, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::{ConfigError, ProbeConfig};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::command::{Exit, Runner};

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "cmd",
    summary: "runs a command (no shell, `$key` words from the config, timeout) and reports the numbers a regex's named groups capture",
    fallback: Fallback::Only(Source::Command),
    reach: Reach::Program,
    build,
    options: crate::config::option_keys::<Options>,
};

/// The original's module name for the same probe.
pub const SPEC_ORIGINAL: ProbeSpec = ProbeSpec {
    module: "cmd_line_probe",
    summary: "the original BLiPP's name of the cmd probe",
    fallback: Fallback::Only(Source::Command),
    reach: Reach::Program,
    build,
    options: crate::config::option_keys::<Options>,
};

/// Why a collection gave no samples.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// Nothing on standard output.
    #[error("{program} printed nothing ({exit:?}); stderr: {stderr}")]
    NoOutput {
        /// `argv[0]`.
        program: String,
        /// How it ended.
        exit: Exit,
        /// The start of its standard error.
        stderr: String,
    },
    /// The regex did not match.
    #[error("{program}'s output does not match the regex ({exit:?}): {output}")]
    NoMatch {
        /// `argv[0]`.
        program: String,
        /// How it ended.
        exit: Exit,
        /// The start of the output.
        output: String,
    },
}

#[derive(Deserialize)]
struct Options {
    #[serde(flatten)]
    command: CommandKeys,
    regex: String,
    #[serde(rename = "eventTypes")]
    event_types: BTreeMap<String, String>,
}

/// Keys of this probe that are not `$key` values.
const OWN_KEYS: [&str; 6] = [
    "command",
    "command_timeout",
    "output_limit",
    "environment",
    "regex",
    "eventTypes",
];

struct CmdProbe {
    runner: Runner,
    regex: regex::Regex,
    locations: regex::CaptureLocations,
    /// (capture group index, group name, event type).
    groups: Vec<(usize, String, Name)>,
    subject: Name,
}

/// The first `max` characters of `bytes`, on one line, for messages.
fn excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut s: String = text.trim().chars().take(max).collect();
    s = s.replace('\n', "\\n");
    s
}

/// The number a capture holds: an unsigned integer stays one, anything else
/// that reads as a finite real is a real.
pub fn number(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u64>() {
        return Some(Value::Int(n));
    }
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(Value::Float)
}

fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    let invalid = |key: &str, value: serde_json::Value, expected: String| {
        ConfigError::invalid(
            "configuration",
            &format!("/properties/configurations/probes/{}/{key}", config.name),
            &value,
            expected,
        )
    };
    let runner = command::runner(config, &options.command)?;
    let regex = regex::RegexBuilder::new(&options.regex)
        .multi_line(true)
        .dot_matches_new_line(true)
        .build()
        .map_err(|e| {
            invalid(
                "regex",
                options.regex.clone().into(),
                format!("a regular expression: {}", crate::config::regex_error(&e)),
            )
        })?;
    if options.event_types.is_empty() {
        return Err(invalid(
            "eventTypes",
            serde_json::json!({}),
            "at least one regex group name mapped to an event type".to_owned(),
        )
        .into());
    }
    let mut groups = Vec::new();
    for (group, event_type) in &options.event_types {
        let index = regex
            .capture_names()
            .position(|n| n == Some(group.as_str()))
            .ok_or_else(|| {
                invalid(
                    "eventTypes",
                    group.clone().into(),
                    "the name of a group of the regex, written (?P<name>...)".to_owned(),
                )
            })?;
        if event_type.trim().is_empty() {
            return Err(invalid(
                "eventTypes",
                event_type.clone().into(),
                "an event type".to_owned(),
            )
            .into());
        }
        groups.push((index, group.clone(), Name::from(event_type.as_str())));
    }
    for name in regex.capture_names().flatten() {
        if !options.event_types.contains_key(name) {
            tracing::debug!(probe = %config.name, group = name, "regex group without an event type is not reported");
        }
    }
    // The original read `$key` values from any key; a key that is neither
    // this probe's nor used by the command is most likely a typo.
    let words = crate::source::words::split(options.command.command.as_deref().unwrap_or_default())
        .unwrap_or_default();
    for key in config.options.keys() {
        let used = words
            .iter()
            .any(|w| w.strip_prefix('$') == Some(key.as_str()));
        if !used && !OWN_KEYS.contains(&key.as_str()) {
            tracing::warn!(probe = %config.name, key = %key, "key is neither a cmd option nor a $key of the command");
        }
    }
    Ok(Built {
        probe: Box::new(CmdProbe {
            runner,
            locations: regex.capture_locations(),
            regex,
            groups,
            subject: ctx.node.clone(),
        }),
        source: Source::Command,
    })
}

impl Probe for CmdProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let exit = self.runner.run()?;
        let program = || self.runner.argv()[0].clone();
        let stdout = String::from_utf8_lossy(self.runner.stdout());
        if stdout.trim().is_empty() {
            return Err(CmdError::NoOutput {
                program: program(),
                exit,
                stderr: excerpt(self.runner.stderr(), 200),
            }
            .into());
        }
        if self
            .regex
            .captures_read(&mut self.locations, &stdout)
            .is_none()
        {
            return Err(CmdError::NoMatch {
                program: program(),
                exit,
                output: excerpt(self.runner.stdout(), 200),
            }
            .into());
        }
        for (index, group, event_type) in &self.groups {
            let Some((start, end)) = self.locations.get(*index) else {
                continue;
            };
            match number(&stdout[start..end]) {
                Some(value) => out.push(Sample::new(
                    ts,
                    &self.subject,
                    event_type,
                    value,
                    Source::Command,
                )),
                None => {
                    tracing::debug!(group = %group, captured = &stdout[start..end], "not a number, not reported")
                }
            }
        }
        Ok(())
    }

    fn blocks(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
