//! A command whose standard output is JSON (`json_probe`; `ceph_probe`,
//! the original's `ceph -s -f json` probe, is the same with its command and
//! values as defaults). Each configured value is a path into the document
//! ([`crate::source::jsonpath`]: a JSON pointer whose `*` segments select
//! every element, folded by an aggregate) with an event type:
//!
//! ```json
//! "iperf": {
//!   "probe_module": "json_probe",
//!   "command": "iperf3 -J -c $address -t 3", "address": "10.0.0.2",
//!   "values": { "bandwidth": { "path": "/intervals/*/sum/bits_per_second", "aggregate": "mean" },
//!               "retransmits": "/end/sum_sent/retransmits" },
//!   "eventTypes": { "bandwidth": "ps:tools:blipp:linux:net:iperf:bandwidth",
//!                   "retransmits": "ps:tools:blipp:linux:net:iperf:retransmits" }
//! }
//! ```
//!
//! The command runs as the `cmd` probe's does ([`super::command`]: same
//! trust policy, sandbox and limits; `output_limit` bounds the document).
//! Output that is not JSON fails the collection with one error naming
//! where it broke; a path that selects nothing gives no sample of its
//! value, and the others are still reported.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value as Json;

use super::command::{self, CommandKeys};
use super::{BuildContext, Built, Fallback, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::{ConfigError, ProbeConfig};
use crate::sample::{Name, Sample, Source, Timestamp};
use crate::source::command::Exit;
use crate::source::command::pipeline::Pipeline;
use crate::source::jsonpath::{self, AGGREGATES, Aggregate, Path};

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "json_probe",
    summary: "runs a command that prints JSON and reports the values JSON pointers (with * and an aggregate) select",
    fallback: Fallback::Only(Source::Command),
    programs: &[],
    reach: Reach::Program,
    build,
    options: crate::config::option_keys::<Options>,
};

/// The original's Ceph probe: `json_probe` with Ceph's command and values
/// as defaults.
pub const SPEC_CEPH: ProbeSpec = ProbeSpec {
    module: "ceph_probe",
    summary: "the original BLiPP's Ceph probe: json_probe running `ceph -s -f json` by default",
    fallback: Fallback::Only(Source::Command),
    programs: &[],
    reach: Reach::Program,
    build,
    options: crate::config::option_keys::<Options>,
};

/// The original json_probe's one value, used when `values` is not set:
/// the mean throughput of an iperf3 report's intervals.
const IPERF_DEFAULT: [(&str, &str, Aggregate, &str); 1] = [(
    "bandwidth",
    "/intervals/*/sum/bits_per_second",
    Aggregate::Mean,
    "ps:tools:blipp:linux:net:iperf:bandwidth",
)];

/// The original ceph_probe's values (of the first monitor, in kB as the
/// original reported them under its `bytes` event types).
const CEPH_DEFAULT: [(&str, &str, Aggregate, &str); 3] = [
    (
        "status",
        "/health/health/health_services/0/mons/0/health",
        Aggregate::Last,
        "ps:tools:blipp:linux:ceph:status",
    ),
    (
        "used",
        "/health/health/health_services/0/mons/0/kb_used",
        Aggregate::Last,
        "ps:tools:blipp:linux:ceph:bytes:used",
    ),
    (
        "free",
        "/health/health/health_services/0/mons/0/kb_avail",
        Aggregate::Last,
        "ps:tools:blipp:linux:ceph:bytes:free",
    ),
];

/// Where iperf3 prints the server's JSON report inside its text output
/// (`--get-server-output` against a server run with `-J`), which the
/// original's json_probe read.
const SERVER_JSON: (&str, &str) = ("Server JSON output:", "iperf Done.");

/// Why a collection gave no samples.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The output is not one JSON document.
    #[error("{program}'s output is not JSON ({exit:?}): {error}; output: {output}")]
    NotJson {
        /// `argv[0]`.
        program: String,
        /// How it ended.
        exit: Exit,
        /// Where the parser stopped and why.
        error: String,
        /// The start of the output.
        output: String,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Selector {
    Path(String),
    Spec {
        path: String,
        aggregate: Option<String>,
    },
}

#[derive(Deserialize)]
struct Options {
    #[serde(flatten)]
    command: CommandKeys,
    values: Option<BTreeMap<String, Selector>>,
    #[serde(rename = "eventTypes")]
    event_types: Option<BTreeMap<String, String>>,
}

/// Keys of this probe that are not `$key` values.
const OWN_KEYS: [&str; 7] = [
    "command",
    "pipeline",
    "command_timeout",
    "output_limit",
    "environment",
    "values",
    "eventTypes",
];

/// One configured value.
struct Pick {
    name: String,
    path: Path,
    aggregate: Option<Aggregate>,
    event_type: Name,
}

struct JsonProbe {
    runner: Pipeline,
    picks: Vec<Pick>,
    subject: Name,
}

/// The JSON document in `stdout`: all of it, or the server report iperf3
/// printed inside its text output.
fn document(stdout: &str) -> &str {
    let (start, end) = SERVER_JSON;
    match stdout.find(start) {
        Some(at) if !stdout.trim_start().starts_with(['{', '[']) => {
            let rest = &stdout[at + start.len()..];
            rest.find(end).map_or(rest, |e| &rest[..e])
        }
        _ => stdout,
    }
}

fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim()
        .chars()
        .take(200)
        .collect::<String>()
        .replace('\n', "\\n")
}

fn picks(config: &ProbeConfig, options: &Options) -> Result<Vec<Pick>, ConfigError> {
    let pointer = |key: &str| format!("/properties/configurations/probes/{}/{key}", config.name);
    let invalid = |key: &str, value: Json, expected: String| {
        ConfigError::invalid("configuration", &pointer(key), &value, expected)
    };
    let defaults: &[(&str, &str, Aggregate, &str)] = if config.module == "ceph_probe" {
        &CEPH_DEFAULT
    } else {
        &IPERF_DEFAULT
    };
    let values: Vec<(String, String, Option<String>)> = match &options.values {
        None => defaults
            .iter()
            .map(|(n, p, _, _)| ((*n).to_owned(), (*p).to_owned(), None))
            .collect(),
        Some(values) => values
            .iter()
            .map(|(name, sel)| match sel {
                Selector::Path(p) => (name.clone(), p.clone(), None),
                Selector::Spec { path, aggregate } => {
                    (name.clone(), path.clone(), aggregate.clone())
                }
            })
            .collect(),
    };
    if values.is_empty() {
        return Err(invalid(
            "values",
            serde_json::json!({}),
            "at least one name mapped to a JSON pointer".to_owned(),
        ));
    }
    let event_types = options.event_types.clone().unwrap_or_default();
    for name in event_types.keys() {
        if !values.iter().any(|(n, _, _)| n == name) {
            return Err(invalid(
                &format!("eventTypes/{name}"),
                name.clone().into(),
                "the name of one of the probe's `values`".to_owned(),
            ));
        }
    }
    let mut out = Vec::new();
    for (name, text, aggregate) in values {
        let at = format!("values/{name}");
        let path = Path::parse(&text)
            .map_err(|e| invalid(&at, text.clone().into(), format!("a JSON pointer: {e}")))?;
        let default = defaults
            .iter()
            .find(|(n, ..)| options.values.is_none() && *n == name);
        let aggregate = match (aggregate, default) {
            (Some(a), _) => Some(Aggregate::named(&a).ok_or_else(|| {
                let names: Vec<&str> = AGGREGATES.iter().map(|(n, _)| *n).collect();
                invalid(
                    &format!("{at}/aggregate"),
                    a.clone().into(),
                    format!("one of {names:?}"),
                )
            })?),
            (None, Some((_, _, a, _))) => Some(*a),
            (None, None) => None,
        };
        if aggregate.is_none() && path.selects_several() {
            let names: Vec<&str> = AGGREGATES.iter().map(|(n, _)| *n).collect();
            return Err(invalid(
                &at,
                text.into(),
                format!(
                    "an object with `path` and an `aggregate` (one of {names:?}): the path's * selects several values"
                ),
            ));
        }
        let event_type = match (event_types.get(&name), default) {
            (Some(e), _) => e.clone(),
            (None, Some((_, _, _, e))) => (*e).to_owned(),
            (None, None) => {
                return Err(invalid(
                    "eventTypes",
                    name.clone().into(),
                    format!("an event type for the value {name:?}"),
                ));
            }
        };
        if event_type.trim().is_empty() {
            return Err(invalid(
                &format!("eventTypes/{name}"),
                event_type.into(),
                "an event type".to_owned(),
            ));
        }
        out.push(Pick {
            name,
            path,
            aggregate,
            event_type: Name::from(event_type),
        });
    }
    Ok(out)
}

fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    let runner = command::runner(config, &options.command)?;
    let picks = picks(config, &options)?;
    command::warn_unused_keys(config, &options.command, &OWN_KEYS)?;
    Ok(Built {
        probe: Box::new(JsonProbe {
            runner,
            picks,
            subject: ctx.node.clone(),
        }),
        source: Source::Command,
    })
}

impl Probe for JsonProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let exit = self.runner.run()?;
        let stdout = String::from_utf8_lossy(self.runner.stdout());
        let doc: Json =
            serde_json::from_str(document(&stdout)).map_err(|e| JsonError::NotJson {
                program: self.runner.argv()[0].clone(),
                exit,
                error: e.to_string(),
                output: excerpt(self.runner.stdout()),
            })?;
        for pick in &self.picks {
            match jsonpath::extract(&doc, &pick.path, pick.aggregate) {
                Some(value) => out.push(Sample::new(
                    ts,
                    &self.subject,
                    &pick.event_type,
                    value,
                    Source::Command,
                )),
                None => {
                    tracing::debug!(value = %pick.name, "nothing known at its path, not reported")
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
