//! The original BLiPP's `netlogger_probe`: follows a NetLogger-format log
//! file (`ts=... event=... VAL=...` lines, see
//! [`crate::source::netlogger`]) and reports the numbers logged since the
//! previous collection, each with the time of its line.
//!
//! Event types are `ps:tools:blipp:netlogger:[<appname>:]<event>` for a
//! `VAL` line and `...:<event>:<key>` for each key of a line without `VAL`.
//! A value that is not a number (`level=Info`) and a line that does not
//! parse (no `ts`, broken quoting) give no sample; they are counted and
//! logged at debug level. A sample's time is its line's `ts`, not the
//! collection's. How the file is followed (from its start,
//! across truncation and rotation, at most `read_limit` bytes per
//! collection) is [`crate::source::tail`]'s.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{BuildContext, Built, Fallback, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::{ConfigError, ProbeConfig};
use crate::sample::{Name, Sample, Source, Timestamp};
use crate::source::netlogger;
use crate::source::tail::Follower;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "netlogger",
    summary: "follows a NetLogger log file (ts=... event=... VAL=...) and reports its numbers with their own times",
    fallback: Fallback::Only(Source::Log),
    programs: &[],
    reach: Reach::Keys {
        paths: &["logfile"],
        urls: &[],
    },
    build,
    options: crate::config::option_keys::<Options>,
};

/// The original's module name for the same probe.
pub const SPEC_ORIGINAL: ProbeSpec = ProbeSpec {
    module: "netlogger_probe",
    summary: "the original BLiPP's name of the netlogger probe",
    fallback: Fallback::Only(Source::Log),
    programs: &[],
    reach: Reach::Keys {
        paths: &["logfile"],
        urls: &[],
    },
    build,
    options: crate::config::option_keys::<Options>,
};

/// Every NetLogger event type starts with this.
pub const PREFIX: &str = "ps:tools:blipp:netlogger:";

/// Bytes read per collection unless `read_limit` says otherwise.
pub const DEFAULT_READ_LIMIT: usize = 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    logfile: PathBuf,
    appname: Option<String>,
    read_limit: Option<usize>,
}

struct NetloggerProbe {
    follower: Follower,
    read_limit: usize,
    lines: Lines,
}

/// Turns lines into samples.
struct Lines {
    prefix: String,
    subject: Name,
    /// Event type of each `(event, key)` seen, made once.
    names: HashMap<(String, Option<String>), Name>,
}

/// An event or key as one level of an event type: whitespace and `:`
/// become `_`.
fn segment(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_whitespace() || c == ':' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    let invalid = |key: &str, value: serde_json::Value, expected: &str| {
        ConfigError::invalid(
            "configuration",
            &format!("/properties/configurations/probes/{}/{key}", config.name),
            &value,
            expected,
        )
    };
    let mut prefix = PREFIX.to_owned();
    if let Some(app) = options.appname.as_deref().filter(|a| !a.is_empty()) {
        if !app
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(invalid("appname", app.into(), "letters, digits, _, - and .").into());
        }
        prefix.push_str(app);
        prefix.push(':');
    }
    let read_limit = options.read_limit.unwrap_or(DEFAULT_READ_LIMIT);
    if read_limit == 0 {
        return Err(invalid(
            "read_limit",
            read_limit.into(),
            "a positive number of bytes",
        )
        .into());
    }
    if !options.logfile.exists() {
        tracing::warn!(probe = %config.name, logfile = %options.logfile.display(), "log file does not exist yet; it is read when it appears");
    }
    Ok(Built {
        probe: Box::new(NetloggerProbe {
            follower: Follower::new(&options.logfile),
            read_limit,
            lines: Lines {
                prefix,
                subject: ctx.node.clone(),
                names: HashMap::new(),
            },
        }),
        source: Source::Log,
    })
}

impl Lines {
    fn line(&mut self, line: &str, out: &mut Vec<Sample>) {
        let record = match netlogger::parse_line(line) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, line, "NetLogger line not read");
                return;
            }
        };
        for (key, value) in record.values {
            let Some(value) = super::cmd::number(&value) else {
                tracing::debug!(event = %record.event, key = ?key, value = %value, "not a number, not reported");
                continue;
            };
            let prefix = &self.prefix;
            let event_type = self
                .names
                .entry((record.event.clone(), key))
                .or_insert_with_key(|(event, key)| {
                    let mut name = format!("{prefix}{}", segment(event));
                    if let Some(key) = key {
                        name.push(':');
                        name.push_str(&segment(key));
                    }
                    Name::from(name)
                });
            out.push(Sample::new(
                record.ts,
                &self.subject,
                event_type,
                value,
                Source::Log,
            ));
        }
    }
}

impl Probe for NetloggerProbe {
    fn collect(&mut self, _ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let Self {
            follower,
            read_limit,
            lines,
        } = self;
        follower.read(*read_limit, &mut |line| lines.line(line, out))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
