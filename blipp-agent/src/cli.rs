//! `blippd`'s command line, compatible with the original's options.

use std::path::PathBuf;

use clap::Parser;

use crate::config::original::{self, OriginalFiles};
use crate::config::{Mode, Overrides};
use crate::logging::LogLevel;

/// What to do with measurements already in UNIS that another blipp made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Existing {
    /// Leave them alone and register our own.
    #[default]
    Ignore,
    /// Adopt them.
    Use,
}

/// blippd: measures this host and reports to stdout, files, UNIS and an MS.
#[derive(Clone, Debug, Parser)]
#[command(name = "blippd", version, about)]
pub struct Args {
    /// The JSON configuration file (a UNIS service object).
    #[arg(short = 'c', long = "config-file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Where UNIS is running.
    #[arg(short = 'u', long = "unis-url", value_name = "URL")]
    pub unis_url: Option<String>,
    /// ID of the node entry in UNIS that this blipp runs on.
    #[arg(short = 'n', long = "node-id", value_name = "NID")]
    pub node_id: Option<String>,
    /// ID of the service entry in UNIS to take the configuration from.
    #[arg(short = 's', long = "service-id", value_name = "SID")]
    pub service_id: Option<String>,
    /// What to do with measurements already in UNIS.
    #[arg(
        short = 'e',
        long = "existing",
        value_enum,
        default_value_t,
        ignore_case = true
    )]
    pub existing: Existing,
    /// URN to use when blipp creates the node in UNIS.
    #[arg(long, value_name = "URN")]
    pub urn: Option<String>,
    /// The local configuration (file and command line) wins over the
    /// service's configuration in UNIS.
    #[arg(long = "override")]
    pub override_unis: bool,
    /// Ignore the service in UNIS and register a fresh one.
    #[arg(long = "new")]
    pub new_service: bool,
    /// Never read the configuration from UNIS (the service is still
    /// registered and kept alive).
    #[arg(long = "no-query")]
    pub no_query: bool,
    /// Log to this file (rotated at 500 kB, 5 kept) instead of stderr.
    #[arg(short = 'l', long = "log", value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log verbosity.
    #[arg(
        short = 'd',
        long = "log-level",
        value_enum,
        default_value = "INFO",
        ignore_case = true
    )]
    pub log_level: LogLevel,
    /// Collect every probe once, print, exit.
    #[arg(long, conflicts_with = "duration")]
    pub once: bool,
    /// Run this many seconds, flush, exit.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Every probe's mode (overrides the configuration).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Every probe's /proc root (overrides the configuration).
    #[arg(long, value_name = "DIR")]
    pub proc_dir: Option<PathBuf>,
    /// Every probe's /sys root (overrides the configuration).
    #[arg(long, value_name = "DIR")]
    pub sys_dir: Option<PathBuf>,
    /// Print samples on stdout even when they also go to UNIS or files.
    #[arg(long)]
    pub stdout: bool,
    /// Check the configuration (every probe built, none started), print
    /// the resolved probes, exit; exit 2 with one line per faulty probe.
    #[arg(long)]
    pub check: bool,
    /// Refuse at start-up, with exit 2, what --check refuses: a probe
    /// whose configuration is at fault. Without it, such a probe is
    /// reported as failed and the others run.
    #[arg(long, conflicts_with = "check")]
    pub strict: bool,
    /// Do not re-execute blippd after loading the eBPF programs (for a
    /// debugger or tracer that must not lose the process at exec).
    ///
    /// By default blippd re-executes itself (same PID) once its eBPF
    /// programs are attached, and the new image inherits them: that leaves
    /// the memory loading took (the kernel's BTF, parsed) behind. With this
    /// flag blippd runs on in the image that loaded them, and that memory
    /// stays part of its peak and resident sizes.
    #[arg(long = "no-reexec")]
    pub no_reexec: bool,
    /// The original BLiPP's INI file, read when present (default
    /// /etc/periscope/blippd.conf; `none` reads none).
    #[arg(long, value_name = "FILE")]
    pub ini: Option<PathBuf>,
    /// The original's node.info, read when present (default
    /// /usr/local/etc/node.info; `none` reads none).
    #[arg(long, value_name = "FILE")]
    pub node_info: Option<PathBuf>,
    /// Run as a daemon, as the original's `-D`: detach from the terminal
    /// and the session, standard streams on /dev/null (log with `-l`).
    #[arg(short = 'D', long, conflicts_with_all = ["check", "once"])]
    pub daemonize: bool,
    /// Write blippd's pid to FILE (removed when blippd ends).
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Serve the control socket (blippcmd) at PATH; `none` serves none.
    /// Default: $RUNTIME_DIRECTORY/blippd.sock, else /run/blipp/blippd.sock.
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
}

impl Args {
    /// Where to serve the control socket; `None` for `none`.
    pub fn control_socket(&self) -> Option<PathBuf> {
        match &self.control_socket {
            Some(p) if p.as_os_str() == "none" => None,
            Some(p) => Some(p.clone()),
            None => Some(crate::control::server::default_path()),
        }
    }

    /// The configuration keys the command line sets.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            unis_url: self.unis_url.clone(),
            service_id: self.service_id.clone(),
            mode: self.mode,
            proc_dir: self.proc_dir.clone(),
            sys_dir: self.sys_dir.clone(),
            original: self.original_files(),
        }
    }

    /// The original's files: a path given must exist, `none` reads none,
    /// and the default paths are read when present.
    fn original_files(&self) -> OriginalFiles {
        let pick = |given: &Option<PathBuf>, default: &str| match given {
            Some(p) if p.as_os_str() == "none" => None,
            Some(p) => Some((p.clone(), true)),
            None => Some((PathBuf::from(default), false)),
        };
        OriginalFiles {
            ini: pick(&self.ini, original::INI_FILE),
            node_info: pick(&self.node_info, original::NODE_INFO_FILE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_flags() {
        let a = Args::try_parse_from([
            "blippd",
            "-c",
            "/etc/blipp.json",
            "-u",
            "http://unis:8888",
            "-n",
            "n1",
            "-s",
            "s1",
            "-e",
            "use",
            "--urn",
            "urn:x",
            "-l",
            "/tmp/l",
            "-d",
            "debug",
        ])
        .unwrap();
        assert_eq!(
            a.config_file.as_deref(),
            Some(std::path::Path::new("/etc/blipp.json"))
        );
        assert_eq!(a.existing, Existing::Use);
        assert_eq!(a.log_level, LogLevel::Debug);
        assert!(!a.override_unis && !a.new_service && !a.no_query);
        let b = Args::try_parse_from(["blippd", "--override", "--new", "--no-query"]).unwrap();
        assert!(b.override_unis && b.new_service && b.no_query);
        assert!(Args::try_parse_from(["blippd", "--once", "--duration", "3"]).is_err());
        assert!(Args::try_parse_from(["blippd", "-e", "maybe"]).is_err());
        assert!(Args::try_parse_from(["blippd", "--strict"]).unwrap().strict);
        // --check refuses what --strict would: both at once says nothing more.
        assert!(Args::try_parse_from(["blippd", "--check", "--strict"]).is_err());
        let none = Args::try_parse_from(["blippd", "--control-socket", "none"]).unwrap();
        assert_eq!(none.control_socket(), None);
        let path = Args::try_parse_from(["blippd", "--control-socket", "/tmp/b.sock"]).unwrap();
        assert_eq!(
            path.control_socket().as_deref(),
            Some(std::path::Path::new("/tmp/b.sock"))
        );
    }
}
