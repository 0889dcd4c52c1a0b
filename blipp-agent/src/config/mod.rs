//! blipp's configuration: the original BLiPP's UNIS service object, checked
//! against `schemas/blipp-config.schema.json`, merged in the order built-in
//! defaults < file < command line < UNIS (or UNIS < local with
//! `--override`), and resolved into one typed [`ProbeConfig`] per probe.

mod commands;
pub mod edit;
mod error;
mod load;
pub mod merge;
mod option_keys;
pub mod original;
pub mod policy;
pub mod preset;
mod probe;
mod record;
pub mod remote_write;
pub mod schema;

pub use error::{ConfigError, escape_controls, regex_error};
pub use load::{
    DEFAULT_SPOOL_DIR, DEFAULT_SPOOL_LIMIT_MB, Local, LocalSource, Overrides, Precedence,
    builtin_defaults, load, load_checked, load_local, origin, read_text, resolve,
};
pub(crate) use load::{merge_service, resolve_probe};
pub use option_keys::option_keys;
pub use probe::{DataFileFormat, Mode, ProbeConfig, Status};

use std::path::PathBuf;

use crate::source::command::sandbox::{Account, Limits};

/// Service-wide settings (`properties.configurations` minus the probes).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Where UNIS is; `None` runs standalone.
    pub unis_url: Option<String>,
    /// Seconds between configuration refreshes from UNIS.
    pub unis_poll_interval: f64,
    /// Upper bound of the retry back-off while UNIS is unreachable, seconds.
    pub unis_max_backoff: f64,
    /// TLS client settings for UNIS and the MS.
    pub tls: Tls,
    /// Where samples wait on disk while UNIS or the MS cannot take them.
    pub spool_dir: PathBuf,
    /// How much the spool may hold, bytes.
    pub spool_limit_bytes: u64,
    /// The default /proc root (`probe_defaults.proc_dir`): where the host
    /// facts for the UNIS node are read.
    pub proc_dir: PathBuf,
    /// The default /sys root (`probe_defaults.sys_dir`).
    pub sys_dir: PathBuf,
    /// Who the commands of `cmd` and `nagios` probes run as
    /// (`command_user`); blippd reads it at start-up only.
    pub command_user: Account,
    /// Their resource limits (`command_limits`), read at start-up only.
    pub command_limits: Limits,
    /// Prometheus remote-write destinations (`prometheus.remote_write`),
    /// read at start-up only.
    pub remote_write: Vec<remote_write::RemoteWrite>,
    /// The `prometheus` section (local file only), read at start-up only.
    pub prometheus: crate::report::prometheus::config::Prometheus,
}

/// TLS settings, as the original named them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tls {
    /// Present a client certificate.
    pub use_ssl: bool,
    /// Client certificate (PEM).
    pub ssl_cert: Option<PathBuf>,
    /// Client key (PEM).
    pub ssl_key: Option<PathBuf>,
    /// CA bundle to verify servers with; `None` uses the system's roots.
    pub ssl_cafile: Option<PathBuf>,
}

/// A complete, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The merged service object, as UNIS will see it.
    pub service: serde_json::Value,
    /// Service status: `OFF` stops every probe.
    pub status: Status,
    /// Service-wide settings.
    pub settings: Settings,
    /// The probes, in name order.
    pub probes: Vec<ProbeConfig>,
    /// Parts of a remote configuration (UNIS) that the local trust policy
    /// kept out of this one.
    pub refused: Vec<policy::Refusal>,
}
