//! One process, followed across restarts: CPU share, memory, threads, open
//! files, I/O, faults, state and start time from `/proc/[pid]` (`stat`,
//! `status`, `io`, `fd/`).
//!
//! The process is selected by `pid`, `pidfile`, `process_name` or `regex`
//! (see [`select`]). While it lives, each collection reads its four files
//! through an open handle on its `/proc/[pid]` directory, so a pid reused
//! by another process is never mistaken for it. When it is gone (the
//! handle's reads fail, or it is a zombie) the selector is resolved again:
//! a pidfile is re-read, a name or regex scans the process list — only
//! then, never while the process is alive.

pub mod select;

use std::io::Read as _;
use std::path::{Path, PathBuf};

use procfs::ProcError;
use procfs::process::Process;
use serde::Deserialize;

use super::{BuildContext, Built, Fallback, Probe, ProbeError, ProbeSpec, Reach};
use crate::config::{ConfigError, ProbeConfig};
use crate::counter::{Counter, Width};
use crate::limits::KERNEL_FILE_MAX;
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::procfs::{ParseError, pid_status};
use select::{Selector, is_gone};

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "process",
    summary: "one process by pid, pidfile, name or command-line regex, followed across restarts: CPU, memory, threads, fds, I/O, faults, state (/proc/[pid])",
    fallback: Fallback::Only(Source::Proc),
    programs: &[],
    reach: Reach::Keys {
        paths: &["pidfile"],
        urls: &[],
    },
    build,
    options: crate::config::option_keys::<Options>,
};

/// Every process event type starts with this.
pub const PREFIX: &str = "ps:tools:blipp:linux:process:";

/// Why a process could not be found or read.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A file of the process could not be read.
    #[error("pid {pid}: reading {what}: {source}")]
    Proc {
        /// The process.
        pid: i32,
        /// Which file.
        what: &'static str,
        /// Why.
        #[source]
        source: ProcError,
    },
    /// `status` did not parse.
    #[error("pid {pid}: {source}")]
    Status {
        /// The process.
        pid: i32,
        /// What was wrong.
        #[source]
        source: ParseError,
    },
    /// The pidfile exists but cannot be read.
    #[error("pidfile {}: {source}", path.display())]
    Pidfile {
        /// The pidfile.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The pidfile does not hold a pid.
    #[error("pidfile {}: {text:?} is not a pid", path.display())]
    PidfileContents {
        /// The pidfile.
        path: PathBuf,
        /// Its text (truncated).
        text: String,
    },
    /// The process list could not be read.
    #[error("listing processes under {}: {source}", path.display())]
    Scan {
        /// The proc root.
        path: PathBuf,
        /// Why.
        #[source]
        source: ProcError,
    },
}

/// The probe's own keys: exactly one selector.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    pid: Option<i32>,
    pidfile: Option<PathBuf>,
    process_name: Option<String>,
    regex: Option<String>,
}

impl Options {
    fn selector(self, config: &ProbeConfig) -> Result<Selector, ConfigError> {
        let pointer = format!("/properties/configurations/probes/{}", config.name);
        let invalid = |key: &str, value: serde_json::Value, expected: &str| {
            ConfigError::invalid(
                "configuration",
                &format!("{pointer}{key}"),
                &value,
                expected,
            )
        };
        let mut chosen = Vec::new();
        if let Some(pid) = self.pid {
            if pid <= 0 {
                return Err(invalid("/pid", pid.into(), "expected a pid greater than 0"));
            }
            chosen.push(Selector::Pid(pid));
        }
        if let Some(path) = self.pidfile {
            chosen.push(Selector::Pidfile(path));
        }
        if let Some(name) = self.process_name {
            if name.is_empty() || name.contains('/') {
                return Err(invalid(
                    "/process_name",
                    name.into(),
                    "expected a process name without '/'",
                ));
            }
            chosen.push(Selector::Name(name));
        }
        if let Some(re) = self.regex {
            let compiled = regex::Regex::new(&re).map_err(|e| {
                invalid(
                    "/regex",
                    re.clone().into(),
                    &format!("a regular expression: {}", crate::config::regex_error(&e)),
                )
            })?;
            chosen.push(Selector::Regex(compiled));
        }
        match chosen.len() {
            1 => Ok(chosen.remove(0)),
            n => Err(invalid(
                "",
                config.options.clone().into(),
                &format!("exactly one of pid, pidfile, process_name, regex (found {n})"),
            )),
        }
    }
}

/// The event types, interned once.
struct Types {
    pid: Name,
    state: Name,
    start_time: Name,
    cpu: Name,
    cpu_user: Name,
    cpu_system: Name,
    rss: Name,
    virt: Name,
    swap: Name,
    threads: Name,
    fds: Name,
    read_bytes: Name,
    write_bytes: Name,
    major_faults: Name,
    voluntary: Name,
    involuntary: Name,
}

impl Types {
    fn new() -> Self {
        let t = |s: &str| Name::from(format!("{PREFIX}{s}"));
        Self {
            pid: t("pid"),
            state: t("state"),
            start_time: t("start_time"),
            cpu: t("cpu:utilization"),
            cpu_user: t("cpu:utilization:user"),
            cpu_system: t("cpu:utilization:system"),
            rss: t("memory:rss"),
            virt: t("memory:virtual"),
            swap: t("memory:swap"),
            threads: t("threads"),
            fds: t("fds"),
            read_bytes: t("io:bytes:read"),
            write_bytes: t("io:bytes:write"),
            major_faults: t("faults:major"),
            voluntary: t("context_switches:voluntary"),
            involuntary: t("context_switches:involuntary"),
        }
    }
}

/// The process being followed and its last CPU reading.
struct Followed {
    process: Process,
    utime: Counter,
    stime: Counter,
    last: Option<Timestamp>,
    /// It replaced a process that was followed before: its cumulative
    /// counters start again, and its first samples say so.
    restarted: bool,
}

struct ProcessProbe {
    selector: Selector,
    proc_dir: PathBuf,
    /// `proc_dir` is a real procfs (not a fixture tree): the kernel's
    /// `fd/` directory size is the descriptor count (6.2+).
    procfs_mounted: bool,
    subject: Name,
    types: Types,
    states: Vec<(char, Name)>,
    ticks_per_second: u64,
    cpus: u32,
    btime: Option<u64>,
    followed: Option<Followed>,
    /// Some process was followed before (so the next one is a restart).
    seen: bool,
    status: String,
}

fn build(config: &ProbeConfig, _ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    let selector = options.selector(config)?;
    Ok(Built {
        probe: Box::new(ProcessProbe::new(
            selector,
            &config.proc_dir,
            &config.sys_dir,
        )),
        source: Source::Proc,
    })
}

impl ProcessProbe {
    fn new(selector: Selector, proc_dir: &Path, sys_dir: &Path) -> Self {
        let btime =
            crate::bounded::read_to_string(&proc_dir.join("stat"), crate::limits::KERNEL_FILE_MAX)
                .ok()
                .and_then(|t| crate::source::procfs::stat::boot_time(&t));
        Self {
            subject: Name::from(format!("process:{}", selector.label())),
            selector,
            proc_dir: proc_dir.to_owned(),
            procfs_mounted: crate::source::kernel::is_procfs(proc_dir),
            types: Types::new(),
            states: Vec::new(),
            ticks_per_second: procfs::ticks_per_second().max(1),
            cpus: crate::host::online_cpus(sys_dir),
            btime,
            followed: None,
            seen: false,
            status: String::with_capacity(2048),
        }
    }

    /// The followed process and its `stat`, resolving the selector again
    /// when the one followed so far is gone. `None`: no such process now.
    fn current(&mut self) -> Result<Option<procfs::process::Stat>, ProcessError> {
        for _ in 0..2 {
            if self.followed.is_none() {
                let Some(process) = self.selector.resolve(&self.proc_dir)? else {
                    return Ok(None);
                };
                tracing::debug!(subject = %self.subject, pid = process.pid, "following process");
                self.followed = Some(Followed {
                    process,
                    utime: Counter::default(),
                    stime: Counter::default(),
                    last: None,
                    restarted: self.seen,
                });
                self.seen = true;
            }
            let Some(f) = &self.followed else { break };
            if !self.procfs_mounted {
                check_fixture_files(&self.proc_dir, f.process.pid)?;
            }
            match f.process.stat() {
                Ok(stat) if !is_gone(stat.state) => return Ok(Some(stat)),
                Ok(_) | Err(ProcError::NotFound(_)) => {
                    tracing::debug!(subject = %self.subject, pid = f.process.pid, "process gone");
                    self.followed = None;
                }
                Err(source) => {
                    return Err(ProcessError::Proc {
                        pid: f.process.pid,
                        what: "stat",
                        source,
                    });
                }
            }
        }
        Ok(None)
    }

    fn state_name(&mut self, state: char) -> Name {
        if let Some((_, n)) = self.states.iter().find(|(c, _)| *c == state) {
            return n.clone();
        }
        let n = Name::from(state.to_string());
        self.states.push((state, n.clone()));
        n
    }
}

/// The files of `pid` that the procfs crate reads whole, in a tree that
/// is not the kernel's: each must be a regular file of at most
/// [`KERNEL_FILE_MAX`] bytes, or it would be read without end (a symlink
/// to `/dev/zero`) or block (a FIFO). A missing file is the crate's to
/// report. On a real procfs they are the kernel's, and not checked.
fn check_fixture_files(proc_dir: &Path, pid: i32) -> Result<(), ProcessError> {
    for what in ["stat", "status", "io"] {
        let path = proc_dir.join(pid.to_string()).join(what);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ProcessError::Proc {
                    pid,
                    what,
                    source: ProcError::Io(e, Some(path)),
                });
            }
        };
        let problem = if !meta.is_file() {
            Some(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            ))
        } else if meta.len() > KERNEL_FILE_MAX {
            Some(crate::bounded::too_large(KERNEL_FILE_MAX))
        } else {
            None
        };
        if let Some(e) = problem {
            return Err(ProcessError::Proc {
                pid,
                what,
                source: ProcError::Io(e, Some(path)),
            });
        }
    }
    Ok(())
}

/// Open descriptors: the kernel's count on a real procfs, the entries of
/// `fd/` in a fixture tree (whose directory size means nothing).
fn fd_count(procfs_mounted: bool, proc_dir: &Path, process: &Process) -> Result<usize, ProcError> {
    if procfs_mounted {
        return process.fd_count();
    }
    let dir = proc_dir.join(process.pid.to_string()).join("fd");
    std::fs::read_dir(&dir)
        .map(Iterator::count)
        .map_err(|e| ProcError::Io(e, Some(dir)))
}

/// Reads a process's `status` into `text`: a regular file of at most
/// [`KERNEL_FILE_MAX`] bytes (a fixture tree may hold anything there).
fn read_status(file: std::fs::File, text: &mut String) -> std::io::Result<()> {
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    file.take(KERNEL_FILE_MAX + 1).read_to_string(text)?;
    if text.len() as u64 > KERNEL_FILE_MAX {
        return Err(crate::bounded::too_large(KERNEL_FILE_MAX));
    }
    Ok(())
}

/// Appends one collection's samples.
struct Emit<'a> {
    out: &'a mut Vec<Sample>,
    ts: Timestamp,
    subject: &'a Name,
    restarted: bool,
}

impl Emit<'_> {
    fn value(&mut self, event_type: &Name, value: Value) {
        self.out.push(Sample::new(
            self.ts,
            self.subject,
            event_type,
            value,
            Source::Proc,
        ));
    }

    /// A cumulative counter of the process; after a restart it starts
    /// again from zero, which the sample's `reset` flag says.
    fn counter(&mut self, event_type: &Name, value: u64) {
        let mut s = Sample::new(
            self.ts,
            self.subject,
            event_type,
            Value::Int(value),
            Source::Proc,
        );
        s.reset = self.restarted;
        self.out.push(s);
    }
}

impl Probe for ProcessProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let Some(stat) = self.current()? else {
            return Ok(());
        };
        let state = self.state_name(stat.state);
        let (ticks, cpus) = (self.ticks_per_second, self.cpus);
        let Some(f) = self.followed.as_mut() else {
            return Ok(());
        };
        let pid = f.process.pid;
        let types = &self.types;
        let mut emit = Emit {
            out,
            ts,
            subject: &self.subject,
            restarted: f.restarted,
        };
        emit.value(
            &types.pid,
            Value::Int(u64::try_from(pid).unwrap_or_default()),
        );
        emit.value(&types.state, Value::Text(state));
        if let Some(btime) = self.btime {
            emit.value(
                &types.start_time,
                Value::Int(btime + stat.starttime / ticks),
            );
        }
        if let Ok(threads) = u64::try_from(stat.num_threads) {
            emit.value(&types.threads, Value::Int(threads));
        }
        emit.value(&types.virt, Value::Int(stat.vsize / 1024));
        emit.counter(&types.major_faults, stat.majflt);

        // CPU share of the whole host over the interval: 0..1 like the cpu
        // probe's fractions. More ticks than the interval allows on every
        // CPU is a reset, not a rate.
        let elapsed = f.last.map(|last| ts.seconds_since(last));
        f.last = Some(ts);
        let capacity = elapsed.map(|s| s * ticks as f64 * f64::from(cpus));
        let plausible = capacity.map_or(u64::MAX, |c| (c.ceil() as u64).saturating_add(ticks));
        let du = f.utime.update(stat.utime, Width::ULONG, plausible);
        let ds = f.stime.update(stat.stime, Width::ULONG, plausible);
        if let (Some(capacity), Some(du), Some(ds)) = (
            capacity,
            du.and_then(|d| d.value()),
            ds.and_then(|d| d.value()),
        ) && capacity > 0.0
        {
            let frac = |d: u64| (d as f64 / capacity).min(1.0);
            emit.value(&types.cpu, Value::Float(frac(du + ds)));
            emit.value(&types.cpu_user, Value::Float(frac(du)));
            emit.value(&types.cpu_system, Value::Float(frac(ds)));
        }

        let process = &f.process;
        self.status.clear();
        process
            .open_relative("status")
            .and_then(|file| {
                read_status(file, &mut self.status).map_err(|e| ProcError::Io(e, None))
            })
            .map_err(|source| ProcessError::Proc {
                pid,
                what: "status",
                source,
            })?;
        let status = pid_status::parse(&self.status)
            .map_err(|source| ProcessError::Status { pid, source })?;
        if let Some(kb) = status.vm_rss {
            emit.value(&types.rss, Value::Int(kb));
        }
        if let Some(kb) = status.vm_swap {
            emit.value(&types.swap, Value::Int(kb));
        }
        if let Some(n) = status.voluntary_ctxt_switches {
            emit.counter(&types.voluntary, n);
        }
        if let Some(n) = status.nonvoluntary_ctxt_switches {
            emit.counter(&types.involuntary, n);
        }
        // io and fd/ are readable only with ptrace access to the process
        // (root, or the same user): without it, no samples.
        match process.io() {
            Ok(io) => {
                emit.counter(&types.read_bytes, io.read_bytes);
                emit.counter(&types.write_bytes, io.write_bytes);
            }
            Err(e) => tracing::debug!(pid, error = %e, "no I/O counters"),
        }
        match fd_count(self.procfs_mounted, &self.proc_dir, process) {
            Ok(n) => emit.value(&types.fds, Value::Int(n as u64)),
            Err(e) => tracing::debug!(pid, error = %e, "no descriptor count"),
        }
        f.restarted = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
