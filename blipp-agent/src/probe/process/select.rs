//! Which process a `process` probe follows, and finding it (again) under a
//! proc tree: by pid, by pidfile, by exact name, or by a regular expression
//! on the command line.
//!
//! A name or regex can match several processes (a server and its workers):
//! the oldest one is followed (earliest start, then lowest pid), which is
//! the one a service manager started. The agent itself never matches.

use std::path::{Path, PathBuf};

use procfs::ProcError;
use procfs::process::Process;
use regex::Regex;

use super::ProcessError;

/// What the configuration selects.
#[derive(Clone, Debug)]
pub enum Selector {
    /// This pid only (a pid cannot be followed across a restart).
    Pid(i32),
    /// The pid written in this file, re-read whenever the process is gone.
    Pidfile(PathBuf),
    /// A process whose name (`comm`, or the base name of `argv[0]` for
    /// names longer than the kernel's 15-character `comm`) is exactly this.
    Name(String),
    /// A process whose command line, arguments joined by spaces, matches.
    Regex(Regex),
}

impl Selector {
    /// The subject's name: `process:<this>`.
    pub fn label(&self) -> String {
        match self {
            Selector::Pid(pid) => pid.to_string(),
            Selector::Pidfile(p) => p.display().to_string(),
            Selector::Name(n) => n.clone(),
            Selector::Regex(r) => r.as_str().to_owned(),
        }
    }

    /// Finds the selected process under `proc_dir`, or `None` when no live
    /// process matches. Name and regex scan every process; pid and pidfile
    /// open one directory.
    pub fn resolve(&self, proc_dir: &Path) -> Result<Option<Process>, ProcessError> {
        match self {
            Selector::Pid(pid) => open(proc_dir, *pid),
            Selector::Pidfile(path) => {
                let text = match crate::bounded::read_to_string(path, crate::limits::SMALL_FILE_MAX)
                {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(source) => {
                        return Err(ProcessError::Pidfile {
                            path: path.clone(),
                            source,
                        });
                    }
                };
                match text.trim().parse::<i32>() {
                    Ok(pid) if pid > 0 => open(proc_dir, pid),
                    _ => Err(ProcessError::PidfileContents {
                        path: path.clone(),
                        text: text.chars().take(32).collect(),
                    }),
                }
            }
            Selector::Name(_) | Selector::Regex(_) => self.scan(proc_dir),
        }
    }

    fn scan(&self, proc_dir: &Path) -> Result<Option<Process>, ProcessError> {
        let me = i32::try_from(std::process::id()).unwrap_or(-1);
        let all = procfs::process::all_processes_with_root(proc_dir).map_err(|source| {
            ProcessError::Scan {
                path: proc_dir.to_owned(),
                source,
            }
        })?;
        let mut best: Option<(u64, i32, Process)> = None;
        // A process that exits during the scan is simply not a candidate.
        for p in all.flatten() {
            if p.pid == me {
                continue;
            }
            let Ok(stat) = p.stat() else { continue };
            if is_gone(stat.state) || !self.matches(&p, &stat.comm) {
                continue;
            }
            let key = (stat.starttime, p.pid);
            if best.as_ref().is_none_or(|(s, pid, _)| key < (*s, *pid)) {
                best = Some((key.0, key.1, p));
            }
        }
        Ok(best.map(|(_, _, p)| p))
    }

    fn matches(&self, p: &Process, comm: &str) -> bool {
        match self {
            Selector::Name(name) => {
                // comm holds at most 15 bytes; a longer name can only be
                // told from the command line.
                comm == name
                    || (comm.len() >= 15
                        && p.cmdline()
                            .ok()
                            .and_then(|c| c.into_iter().next())
                            .is_some_and(|argv0| {
                                Path::new(&argv0)
                                    .file_name()
                                    .is_some_and(|f| f == name.as_str())
                            }))
            }
            Selector::Regex(re) => p
                .cmdline()
                .ok()
                .filter(|c| !c.is_empty())
                .is_some_and(|c| re.is_match(&c.join(" "))),
            Selector::Pid(_) | Selector::Pidfile(_) => true,
        }
    }
}

/// Zombies and dead tasks have exited: they are not followed.
pub fn is_gone(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

fn open(proc_dir: &Path, pid: i32) -> Result<Option<Process>, ProcessError> {
    match Process::new_with_root(proc_dir.join(pid.to_string())) {
        Ok(p) => Ok(Some(p)),
        Err(ProcError::NotFound(_)) => Ok(None),
        Err(source) => Err(ProcessError::Proc {
            pid,
            what: "directory",
            source,
        }),
    }
}
