//! Nagios / Monitoring Plugins checks as a probe: runs a plugin (for
//! example `/usr/lib/nagios/plugins/check_load -w 5,4,3 -c 10,8,6`, from
//! Debian's `monitoring-plugins-basic`) at each collection, the way the
//! `cmd` probe runs a command (no shell, clean environment, timeout), and
//! reports:
//!
//! - `ps:tools:blipp:nagios:<check>:status`: the exit status, `0` OK, `1`
//!   WARNING, `2` CRITICAL, `3` UNKNOWN (the plugin's own verdict);
//! - `ps:tools:blipp:nagios:<check>:state`: the same as text (`"OK"`, ...);
//! - `ps:tools:blipp:nagios:<check>:<label>`: each performance datum's
//!   value in the unit [`crate::source::perfdata`] normalises to (seconds,
//!   bytes; `%`, counters and plain numbers as printed).
//!
//! `<check>` is the `check` key, by default the probe's name. In a label,
//! whitespace and `:` become `_`, so that a label cannot add levels to the
//! event type.
//!
//! A plugin that could not be run, timed out, was killed by a signal or
//! exited with another status (126 not executable, 127 not found) gives no
//! sample and a logged collection error: blipp did not learn the state of
//! the checked thing, and unknown is unknown. (A plugin's own UNKNOWN, 3,
//! is its statement and is reported.) A datum whose value is `U` gives no
//! sample either.

use std::collections::HashMap;

use serde::Deserialize;

use super::command::{self, CommandKeys};
use super::{BuildContext, Built, Fallback, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::{ConfigError, ProbeConfig};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::command::Exit;
use crate::source::command::pipeline::Pipeline;
use crate::source::perfdata;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "nagios",
    summary: "runs a Nagios/Monitoring-Plugins check: its status (0 OK .. 3 UNKNOWN) and performance data",
    fallback: Fallback::Only(Source::Command),
    programs: &[],
    reach: Reach::Program,
    build,
    options: crate::config::option_keys::<Options>,
};

/// Every Nagios event type starts with this.
pub const PREFIX: &str = "ps:tools:blipp:nagios:";

/// The names of the four plugin return codes.
pub const STATES: [&str; 4] = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];

/// Why a check gave no status.
#[derive(Debug, thiserror::Error)]
pub enum NagiosError {
    /// It ended in a way no plugin reports a state with.
    #[error(
        "{program} ended with {exit:?}, not a plugin status (0-3); stderr: {stderr}; stdout: {stdout}"
    )]
    NoStatus {
        /// `argv[0]`.
        program: String,
        /// How it ended.
        exit: Exit,
        /// The start of its standard error.
        stderr: String,
        /// The start of its standard output.
        stdout: String,
    },
}

#[derive(Deserialize)]
struct Options {
    #[serde(flatten)]
    command: CommandKeys,
    check: Option<String>,
}

struct NagiosProbe {
    runner: Pipeline,
    prefix: String,
    subject: Name,
    status: Name,
    state: Name,
    states: [Name; 4],
    /// Event type of each label seen, made once.
    labels: HashMap<String, Name>,
}

/// The event type segment of a label.
pub fn label_segment(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_whitespace() || c == ':' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim()
        .chars()
        .take(200)
        .collect::<String>()
        .replace('\n', "\\n")
}

fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    let check = options.check.unwrap_or_else(|| config.name.clone());
    if check.is_empty()
        || !check
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(ConfigError::invalid(
            "configuration",
            &format!("/properties/configurations/probes/{}/check", config.name),
            &check.clone().into(),
            "a check name of letters, digits, _, - and . (the probe's name is used when `check` is not set)",
        )
        .into());
    }
    let runner = command::runner(config, &options.command)?;
    let prefix = format!("{PREFIX}{check}:");
    Ok(Built {
        probe: Box::new(NagiosProbe {
            runner,
            status: Name::from(format!("{prefix}status")),
            state: Name::from(format!("{prefix}state")),
            states: STATES.map(Name::from),
            prefix,
            subject: ctx.node.clone(),
            labels: HashMap::new(),
        }),
        source: Source::Command,
    })
}

impl Probe for NagiosProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let exit = self.runner.run()?;
        let code = match exit {
            Exit::Code(c @ 0..=3) => c.unsigned_abs(),
            _ => {
                return Err(NagiosError::NoStatus {
                    program: self.runner.argv()[0].clone(),
                    exit,
                    stderr: excerpt(self.runner.stderr()),
                    stdout: excerpt(self.runner.stdout()),
                }
                .into());
            }
        };
        out.push(Sample::new(
            ts,
            &self.subject,
            &self.status,
            Value::Int(u64::from(code)),
            Source::Command,
        ));
        out.push(Sample::new(
            ts,
            &self.subject,
            &self.state,
            Value::Text(self.states[code as usize].clone()),
            Source::Command,
        ));
        let parsed = perfdata::parse(&String::from_utf8_lossy(self.runner.stdout()));
        for bad in &parsed.malformed {
            tracing::debug!(datum = %bad, "performance datum does not parse");
        }
        for datum in parsed.data {
            let Some(v) = datum.value else { continue };
            let event_type = self.labels.entry(datum.label).or_insert_with_key(|label| {
                Name::from(format!("{}{}", self.prefix, label_segment(label)))
            });
            // Printed as a whole number and still whole after the unit's
            // factor (a byte count, a counter): an integer.
            let value = if datum.integral && v >= 0.0 && v.fract() == 0.0 && v < 9.0e15 {
                Value::Int(v as u64)
            } else {
                Value::Float(v)
            };
            out.push(Sample::new(
                ts,
                &self.subject,
                event_type,
                value,
                Source::Command,
            ));
        }
        Ok(())
    }

    fn blocks(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
