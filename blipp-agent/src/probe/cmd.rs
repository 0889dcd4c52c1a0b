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
//! limit; a `pipeline` of several) is [`crate::source::command`]'s; how
//! `$key` words are filled in is [`crate::source::command::argv`]'s. Each
//! regex (`regex` may be a list) is matched as the original compiled it
//! (`re.S | re.M`: `.` matches newlines, `^`/`$` match at line ends), once
//! per collection, or at every match with `"matches": "all"`, where the
//! group `subject` names each match's series; each group listed in
//! `eventTypes` that matched a number gives one sample, transformed by its
//! `unit`, `scale` and `offset` ([`transform`]). A group that matched
//! something else (`unknown`, `-`) gives none (logged at debug level): a
//! value that was not measured is not reported.
//!
//! Costs are bounded where a configuration or the output could make them
//! grow: at most [`MAX_REGEXES`] regexes of at most [`MAX_GROUPS`] groups
//! each (every group costs time at every match), at most `max_matches`
//! matches a collection, and at most [`MAX_SUBJECTS`] subjects over the
//! probe's life.

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};

use super::command::{self, CommandKeys};
use super::{BuildContext, Built, Fallback, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::{ConfigError, ProbeConfig};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use transform::{Transform, UNITS};

pub mod transform;
use crate::source::command::Exit;
use crate::source::command::pipeline::Pipeline;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "cmd",
    summary: "runs a command (no shell, `$key` words from the config, timeout) and reports the numbers a regex's named groups capture",
    fallback: Fallback::Only(Source::Command),
    programs: &[],
    reach: Reach::Program,
    build,
    options: crate::config::option_keys::<Options>,
};

/// The original's module name for the same probe.
pub const SPEC_ORIGINAL: ProbeSpec = ProbeSpec {
    module: "cmd_line_probe",
    summary: "the original BLiPP's name of the cmd probe",
    fallback: Fallback::Only(Source::Command),
    programs: &[],
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
    /// No regex matched.
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

/// The most regexes `regex` may list.
pub const MAX_REGEXES: usize = 16;
/// The most capture groups a regex may have: the regex engines that
/// report groups do work for each group at every match.
pub const MAX_GROUPS: usize = 32;
/// Matches reported a collection unless `max_matches` says otherwise.
pub const DEFAULT_MAX_MATCHES: usize = 256;
/// The largest `max_matches`.
pub const MAX_MATCHES: usize = 4096;
/// Distinct subjects (`"matches": "all"`) a probe reports over its life;
/// each is a series of its own in UNIS, which output must not grow
/// without bound.
pub const MAX_SUBJECTS: usize = 1024;
/// Bytes a compiled regex may take.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The group whose capture names a match's subject.
const SUBJECT_GROUP: &str = "subject";
/// The longest captured subject kept, in bytes.
const SUBJECT_MAX: usize = 128;

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EventSpec {
    Name(String),
    Transformed {
        #[serde(rename = "eventType")]
        event_type: String,
        scale: Option<f64>,
        offset: Option<f64>,
        unit: Option<String>,
    },
}

#[derive(Deserialize)]
struct Options {
    #[serde(flatten)]
    command: CommandKeys,
    regex: OneOrMany,
    #[serde(rename = "eventTypes")]
    event_types: BTreeMap<String, EventSpec>,
    matches: Option<String>,
    max_matches: Option<usize>,
}

/// Keys of this probe that are not `$key` values.
const OWN_KEYS: [&str; 9] = [
    "command",
    "pipeline",
    "command_timeout",
    "output_limit",
    "environment",
    "regex",
    "eventTypes",
    "matches",
    "max_matches",
];

/// One group that becomes samples.
struct Target {
    index: usize,
    group: String,
    event_type: Name,
    transform: Transform,
}

/// One regex and what its groups become.
struct Pattern {
    regex: regex::Regex,
    locations: regex::CaptureLocations,
    targets: Vec<Target>,
    /// The `subject` group's index, with `"matches": "all"`.
    subject: Option<usize>,
}

struct CmdProbe {
    runner: Pipeline,
    patterns: Vec<Pattern>,
    all: bool,
    max_matches: usize,
    node: Name,
    prefix: String,
    /// Subjects made so far, by captured text.
    subjects: HashMap<String, Name>,
    /// Subjects reported in this collection (a second match of one is
    /// not reported).
    seen: HashSet<Name>,
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

/// A captured subject as a name segment: whitespace and control
/// characters become `_`, at most [`SUBJECT_MAX`] bytes; `None` when
/// nothing is left.
fn subject_segment(captured: &str) -> Option<String> {
    let mut out = String::new();
    for c in captured.trim().chars() {
        if out.len() + c.len_utf8() > SUBJECT_MAX {
            break;
        }
        out.push(if c.is_whitespace() || c.is_control() {
            '_'
        } else {
            c
        });
    }
    (!out.is_empty()).then_some(out)
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
    let all = match options.matches.as_deref() {
        None | Some("first") => false,
        Some("all") => true,
        Some(other) => {
            return Err(invalid("matches", other.into(), "\"first\" or \"all\"".to_owned()).into());
        }
    };
    let max_matches = options.max_matches.unwrap_or(DEFAULT_MAX_MATCHES);
    if !(1..=MAX_MATCHES).contains(&max_matches) {
        return Err(invalid(
            "max_matches",
            max_matches.into(),
            format!("1 to {MAX_MATCHES} matches a collection"),
        )
        .into());
    }
    let (texts, listed) = match options.regex {
        OneOrMany::One(r) => (vec![r], false),
        OneOrMany::Many(rs) => (rs, true),
    };
    if texts.is_empty() || texts.len() > MAX_REGEXES {
        return Err(invalid(
            "regex",
            texts.into(),
            format!("a regular expression, or a list of 1 to {MAX_REGEXES}"),
        )
        .into());
    }
    if options.event_types.is_empty() {
        return Err(invalid(
            "eventTypes",
            serde_json::json!({}),
            "at least one regex group name mapped to an event type".to_owned(),
        )
        .into());
    }
    let mut patterns = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let key = if listed {
            format!("regex/{i}")
        } else {
            "regex".to_owned()
        };
        let regex = regex::RegexBuilder::new(text)
            .multi_line(true)
            .dot_matches_new_line(true)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                invalid(
                    &key,
                    text.clone().into(),
                    format!("a regular expression: {}", crate::config::regex_error(&e)),
                )
            })?;
        let groups = regex.captures_len() - 1;
        if groups > MAX_GROUPS {
            return Err(invalid(
                &key,
                text.clone().into(),
                format!("a regular expression with at most {MAX_GROUPS} groups, not {groups}: each group costs time at every match"),
            )
            .into());
        }
        let position = |name: &str| regex.capture_names().position(|n| n == Some(name));
        let subject = position(SUBJECT_GROUP);
        if all && subject.is_none() {
            return Err(invalid(
                &key,
                text.clone().into(),
                "with \"matches\": \"all\", a regex with a group (?P<subject>...) naming each match's series".to_owned(),
            )
            .into());
        }
        patterns.push(Pattern {
            locations: regex.capture_locations(),
            targets: Vec::new(),
            subject: subject.filter(|_| all),
            regex,
        });
    }
    for (group, spec) in &options.event_types {
        let at = format!("eventTypes/{group}");
        let (event_type, transform) = match spec {
            EventSpec::Name(e) => (e, Transform::default()),
            EventSpec::Transformed {
                event_type,
                scale,
                offset,
                unit,
            } => {
                let t = Transform::new(unit.as_deref(), *scale, *offset).ok_or_else(|| {
                    invalid(
                        &at,
                        serde_json::json!({"unit": unit, "scale": scale, "offset": offset}),
                        format!("a `unit` of {UNITS:?}, a finite `scale` other than 0 and a finite `offset`"),
                    )
                })?;
                (event_type, t)
            }
        };
        if event_type.trim().is_empty() {
            return Err(invalid(&at, event_type.clone().into(), "an event type".to_owned()).into());
        }
        if all && group == SUBJECT_GROUP {
            return Err(invalid(
                &at,
                group.clone().into(),
                "a group other than `subject`, which names each match's series".to_owned(),
            )
            .into());
        }
        let mut found = false;
        for p in &mut patterns {
            if let Some(index) = p
                .regex
                .capture_names()
                .position(|n| n == Some(group.as_str()))
            {
                found = true;
                p.targets.push(Target {
                    index,
                    group: group.clone(),
                    event_type: Name::from(event_type.as_str()),
                    transform,
                });
            }
        }
        if !found {
            return Err(invalid(
                "eventTypes",
                group.clone().into(),
                "the name of a group of the regex, written (?P<name>...)".to_owned(),
            )
            .into());
        }
    }
    for p in &patterns {
        for name in p.regex.capture_names().flatten() {
            if !(options.event_types.contains_key(name) || all && name == SUBJECT_GROUP) {
                tracing::debug!(probe = %config.name, group = name, "regex group without an event type is not reported");
            }
        }
    }
    command::warn_unused_keys(config, &options.command, &OWN_KEYS)?;
    Ok(Built {
        probe: Box::new(CmdProbe {
            runner,
            patterns,
            all,
            max_matches,
            node: ctx.node.clone(),
            prefix: format!("{}:", config.name),
            subjects: HashMap::new(),
            seen: HashSet::new(),
        }),
        source: Source::Command,
    })
}

impl CmdProbe {
    /// The subject a match's capture names; `None` when it names none or
    /// is a new one past [`MAX_SUBJECTS`].
    fn subject_of(&mut self, captured: &str) -> Option<Name> {
        if let Some(name) = self.subjects.get(captured) {
            return Some(name.clone());
        }
        if self.subjects.len() >= MAX_SUBJECTS {
            tracing::warn!(
                subject = captured,
                limit = MAX_SUBJECTS,
                "too many subjects: not reported"
            );
            return None;
        }
        let name = Name::from(format!("{}{}", self.prefix, subject_segment(captured)?));
        self.subjects.insert(captured.to_owned(), name.clone());
        Some(name)
    }
}

/// The samples of one match, whose groups are in `locations`.
fn report(
    text: &str,
    locations: &regex::CaptureLocations,
    targets: &[Target],
    ts: Timestamp,
    subject: &Name,
    out: &mut Vec<Sample>,
) {
    for t in targets {
        let Some((start, end)) = locations.get(t.index) else {
            continue;
        };
        match number(&text[start..end]).and_then(|v| t.transform.apply(v)) {
            Some(value) => out.push(Sample::new(
                ts,
                subject,
                &t.event_type,
                value,
                Source::Command,
            )),
            None => {
                tracing::debug!(group = %t.group, captured = &text[start..end], "not a number, not reported");
            }
        }
    }
}

impl Probe for CmdProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let exit = self.runner.run()?;
        let stdout = String::from_utf8_lossy(self.runner.stdout()).into_owned();
        if stdout.trim().is_empty() {
            return Err(CmdError::NoOutput {
                program: self.runner.argv()[0].clone(),
                exit,
                stderr: excerpt(self.runner.stderr(), 200),
            }
            .into());
        }
        let mut matched = 0usize;
        let mut patterns = std::mem::take(&mut self.patterns);
        self.seen.clear();
        'patterns: for p in &mut patterns {
            let mut at = 0;
            while at <= stdout.len() {
                let Some(m) = p.regex.captures_read_at(&mut p.locations, &stdout, at) else {
                    break;
                };
                matched += 1;
                if matched > self.max_matches {
                    tracing::warn!(
                        limit = self.max_matches,
                        "more matches than max_matches: the rest is not reported"
                    );
                    break 'patterns;
                }
                let subject = match p.subject.and_then(|i| p.locations.get(i)) {
                    Some((s, e)) => self.subject_of(&stdout[s..e]),
                    None => Some(self.node.clone()),
                };
                if let Some(subject) = subject {
                    if self.seen.insert(subject.clone()) || !self.all {
                        report(&stdout, &p.locations, &p.targets, ts, &subject, out);
                    } else {
                        tracing::debug!(subject = %subject, "a second match of a subject is not reported");
                    }
                }
                if !self.all {
                    break;
                }
                // An empty match moves on by one character.
                at = if m.end() > m.start() {
                    m.end()
                } else {
                    stdout[m.end()..]
                        .chars()
                        .next()
                        .map_or(stdout.len() + 1, |c| m.end() + c.len_utf8())
                };
            }
        }
        self.patterns = patterns;
        if matched == 0 {
            return Err(CmdError::NoMatch {
                program: self.runner.argv()[0].clone(),
                exit,
                output: excerpt(self.runner.stdout(), 200),
            }
            .into());
        }
        Ok(())
    }

    fn blocks(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
