//! Whether a service on the host runs, for the UNIS service record that
//! blippd keeps for it (the original's `registration_probe`).
//!
//! The probe only measures: each collection says `ON` (and the pid) while
//! a process found by `pidfile` or `process_name` lives, `OFF` otherwise,
//! so that it reports liveness with or without UNIS. Writing the service
//! record from those samples is the UNIS sink's (`unis::watched`), which
//! alone talks to UNIS. A found process is followed through a handle on
//! its `/proc/[pid]` directory, so that a live one costs one `stat` read
//! per collection; the process list is scanned only while none is found.

use std::path::PathBuf;

use procfs::ProcError;
use procfs::process::Process;
use serde::Deserialize;

use super::process::select::{Selector, is_gone};
use super::{BuildContext, Built, Fallback, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::{ConfigError, ProbeConfig};
use crate::sample::{Name, Sample, Source, Timestamp, Value};

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "registration_probe",
    summary: "whether a service on the host runs (pidfile or process name), kept as its UNIS service record with status ON/OFF (/proc/[pid])",
    fallback: Fallback::Only(Source::Proc),
    programs: &[],
    reach: Reach::Keys {
        paths: &["pidfile"],
        urls: &[],
    },
    build,
    options: crate::config::option_keys::<Options>,
};

/// The service's state: `ON` or `OFF`.
pub const STATUS: &str = "ps:tools:blipp:linux:registration:status";
/// The pid of the running service.
pub const PID: &str = "ps:tools:blipp:linux:registration:pid";

/// The probe's own keys: the service record's fields, and how to find
/// the service's process (`pidfile`, `process_name`, or both: either
/// finding a live process means `ON`, as in the original).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The record's `serviceType`.
    pub service_type: String,
    /// Its `name`.
    pub service_name: Option<String>,
    /// Its `description`.
    pub service_description: Option<String>,
    /// Its `accessPoint`; with `service_type`, how the record is found.
    pub service_accesspoint: Option<String>,
    /// Its `runningOn` href (else blipp's node).
    pub service_runningon: Option<String>,
    /// Its `ttl`, seconds.
    pub service_ttl: Option<u64>,
    /// A file holding the service's pid.
    pub pidfile: Option<PathBuf>,
    /// The service process's name.
    pub process_name: Option<String>,
}

impl Options {
    fn selectors(&self, config: &ProbeConfig) -> Result<Vec<Selector>, ConfigError> {
        let pointer = format!("/properties/configurations/probes/{}", config.name);
        let mut out = Vec::with_capacity(2);
        if let Some(path) = &self.pidfile {
            out.push(Selector::Pidfile(path.clone()));
        }
        if let Some(name) = &self.process_name {
            if name.is_empty() || name.contains('/') {
                return Err(ConfigError::invalid(
                    "configuration",
                    &format!("{pointer}/process_name"),
                    &name.as_str().into(),
                    "expected a process name without '/'",
                ));
            }
            out.push(Selector::Name(name.clone()));
        }
        if out.is_empty() {
            return Err(ConfigError::invalid(
                "configuration",
                &pointer,
                &config.options.clone().into(),
                "pidfile or process_name",
            ));
        }
        Ok(out)
    }
}

struct RegistrationProbe {
    selectors: Vec<Selector>,
    proc_dir: PathBuf,
    followed: Option<Process>,
    subject: Name,
    status: Name,
    pid: Name,
    on: Name,
    off: Name,
}

fn build(config: &ProbeConfig, _ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    let selectors = options.selectors(config)?;
    Ok(Built {
        probe: Box::new(RegistrationProbe {
            selectors,
            proc_dir: config.proc_dir.clone(),
            followed: None,
            subject: Name::from(format!("service:{}", config.name)),
            status: Name::from(STATUS),
            pid: Name::from(PID),
            on: Name::from("ON"),
            off: Name::from("OFF"),
        }),
        source: Source::Proc,
    })
}

/// A process that has not exited.
fn alive(process: &Process) -> Result<bool, ProcessGone> {
    match process.stat() {
        Ok(stat) => Ok(!is_gone(stat.state)),
        Err(ProcError::NotFound(_)) => Ok(false),
        Err(e) => Err(ProcessGone(e)),
    }
}

/// A live process's `stat` that could not be read.
struct ProcessGone(ProcError);

impl RegistrationProbe {
    /// The pid of the service's live process, if one runs.
    fn running(&mut self) -> Result<Option<i32>, ProbeError> {
        let proc_error = |pid: i32, source: ProcError| super::process::ProcessError::Proc {
            pid,
            what: "stat",
            source,
        };
        if let Some(p) = &self.followed {
            match alive(p) {
                Ok(true) => return Ok(Some(p.pid)),
                Ok(false) => self.followed = None,
                Err(ProcessGone(e)) => return Err(proc_error(p.pid, e).into()),
            }
        }
        for selector in &self.selectors {
            let Some(p) = selector.resolve(&self.proc_dir)? else {
                continue;
            };
            match alive(&p) {
                Ok(true) => {
                    let pid = p.pid;
                    self.followed = Some(p);
                    return Ok(Some(pid));
                }
                Ok(false) => {}
                Err(ProcessGone(e)) => return Err(proc_error(p.pid, e).into()),
            }
        }
        Ok(None)
    }
}

impl Probe for RegistrationProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let pid = self.running()?;
        let state = if pid.is_some() { &self.on } else { &self.off };
        out.push(Sample::new(
            ts,
            &self.subject,
            &self.status,
            Value::Text(Name::clone(state)),
            Source::Proc,
        ));
        if let Some(pid) = pid.and_then(|p| u64::try_from(p).ok()) {
            out.push(Sample::new(
                ts,
                &self.subject,
                &self.pid,
                Value::Int(pid),
                Source::Proc,
            ));
        }
        Ok(())
    }
}

/// The latest status a batch of this probe's samples reports: `Some(true)`
/// for `ON`.
pub fn latest_status(samples: &[Sample]) -> Option<bool> {
    samples
        .iter()
        .rev()
        .find(|s| &*s.event_type == STATUS)
        .and_then(|s| match &s.value {
            Value::Text(t) => Some(&**t == "ON"),
            _ => None,
        })
}

#[cfg(test)]
mod tests;
