//! The path to a host, hop by hop (`traceroute`, also the original's
//! `traceroute_probe`): runs `traceroute` (or `tracepath`) as the `cmd`
//! probe runs commands, parses its hop list
//! ([`crate::source::traceroute`]) and reports, for each hop `n` that
//! answered, subject `hop:<n>`:
//!
//! - `hopip` (`ps:tools:blipp:linux:net:traceroute:hopip`): the addresses
//!   that answered, in the order they first did, separated by `,` (the
//!   original reported the list of each probe's address);
//! - `rtt` (`...:traceroute:rtt`): the shortest round-trip time, ms;
//!
//! and for the node `hops` (`...:traceroute:hops`), the number of hops to
//! the destination when it answered. A hop nobody answered (`* * *`) gives
//! no sample: what is there is unknown.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::command::{self, CommandKeys};
use super::{BuildContext, Built, Fallback, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::{ConfigError, ProbeConfig};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::command::Exit;
use crate::source::command::pipeline::Pipeline;
use crate::source::traceroute;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "traceroute",
    summary: "runs traceroute (or tracepath) and reports each hop's addresses and shortest round-trip time",
    fallback: Fallback::Only(Source::Command),
    programs: &[],
    reach: Reach::Program,
    build,
    options: crate::config::option_keys::<Options>,
};

/// The original's module name for the same probe.
pub const SPEC_ORIGINAL: ProbeSpec = ProbeSpec {
    module: "traceroute_probe",
    summary: "the original BLiPP's name of the traceroute probe",
    fallback: Fallback::Only(Source::Command),
    programs: &[],
    reach: Reach::Program,
    build,
    options: crate::config::option_keys::<Options>,
};

/// The command when none is configured: numeric (no name lookups), UDP
/// probes (no privilege needed), at most 2 s per answer.
pub const DEFAULT_COMMAND: &str = "traceroute -n -w 2 $-m $-q $address";

/// Seconds the command may run unless `command_timeout` says otherwise: a
/// path of silent hops takes traceroute several rounds of its wait.
const DEFAULT_TIMEOUT: f64 = 30.0;

/// Event types by the names `eventTypes` may rename them under.
const EVENT_TYPES: [(&str, &str); 3] = [
    ("hopip", "ps:tools:blipp:linux:net:traceroute:hopip"),
    ("rtt", "ps:tools:blipp:linux:net:traceroute:rtt"),
    ("hops", "ps:tools:blipp:linux:net:traceroute:hops"),
];

/// Why a collection gave no samples.
#[derive(Debug, thiserror::Error)]
pub enum TracerouteError {
    /// Nothing in the output is a hop.
    #[error("{program} printed no hop ({exit:?}); stderr: {stderr}; stdout: {stdout}")]
    NoHop {
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
    address: Option<serde_json::Value>,
    /// The original's regex over the hop lines; blipp parses the hop list
    /// itself.
    regex: Option<String>,
    #[serde(rename = "eventTypes")]
    event_types: Option<BTreeMap<String, String>>,
}

struct TracerouteProbe {
    runner: Pipeline,
    node: Name,
    hopip: Name,
    rtt: Name,
    hops: Name,
    /// `hop:<n>`, made once per hop number seen.
    subjects: Vec<Name>,
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
    let mut options: Options = config.options()?;
    let pointer = |key: &str| format!("/properties/configurations/probes/{}/{key}", config.name);
    if options.command.command.is_none() && options.address.is_none() {
        return Err(ConfigError::invalid(
            "configuration",
            &pointer("address"),
            &serde_json::Value::Null,
            format!("the host to trace (the default command is `{DEFAULT_COMMAND}`)"),
        )
        .into());
    }
    let mut names = EVENT_TYPES.map(|(k, v)| (k, v.to_owned()));
    for (key, event_type) in options.event_types.iter().flatten() {
        let Some(slot) = names.iter_mut().find(|(k, _)| k == key) else {
            return Err(ConfigError::invalid(
                "configuration",
                &pointer(&format!("eventTypes/{key}")),
                &key.clone().into(),
                "one of \"hopip\", \"rtt\", \"hops\"",
            )
            .into());
        };
        slot.1.clone_from(event_type);
    }
    if options.regex.is_some() {
        tracing::info!(probe = %config.name, "regex is not used: blipp parses traceroute's hop list itself");
    }
    options
        .command
        .command_timeout
        .get_or_insert(DEFAULT_TIMEOUT);
    let runner = command::runner(config, &options.command)?;
    let [hopip, rtt, hops] = names.map(|(_, v)| Name::from(v));
    Ok(Built {
        probe: Box::new(TracerouteProbe {
            runner,
            node: ctx.node.clone(),
            hopip,
            rtt,
            hops,
            subjects: Vec::new(),
        }),
        source: Source::Command,
    })
}

impl TracerouteProbe {
    fn subject(&mut self, number: u32) -> Name {
        let i = number.saturating_sub(1) as usize;
        while self.subjects.len() <= i {
            let n = self.subjects.len() + 1;
            self.subjects.push(Name::from(format!("hop:{n}")));
        }
        self.subjects[i].clone()
    }
}

impl Probe for TracerouteProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let exit = self.runner.run()?;
        let path = traceroute::parse(&String::from_utf8_lossy(self.runner.stdout()));
        if path.hops.is_empty() {
            return Err(TracerouteError::NoHop {
                program: self.runner.argv()[0].clone(),
                exit,
                stderr: excerpt(self.runner.stderr()),
                stdout: excerpt(self.runner.stdout()),
            }
            .into());
        }
        for hop in &path.hops {
            // Hop numbers come from the output: bounded by traceroute's
            // own maximum (255), so the subjects made stay few.
            if hop.number == 0 || hop.number > 255 {
                continue;
            }
            let subject = self.subject(hop.number);
            let addresses = hop.addresses();
            if !addresses.is_empty() {
                out.push(Sample::new(
                    ts,
                    &subject,
                    &self.hopip,
                    Value::Text(Name::from(addresses.join(","))),
                    Source::Command,
                ));
            }
            if let Some(rtt) = hop.min_rtt_ms() {
                out.push(Sample::new(
                    ts,
                    &subject,
                    &self.rtt,
                    Value::Float(rtt),
                    Source::Command,
                ));
            }
        }
        if let (true, Some(last)) = (path.reached, path.hops.last()) {
            out.push(Sample::new(
                ts,
                &self.node,
                &self.hops,
                Value::Int(u64::from(last.number)),
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
