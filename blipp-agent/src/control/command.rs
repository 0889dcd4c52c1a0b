//! What the control plane asks of the arbiter, which owns the probes and
//! the running configuration, and answers each command on its own
//! one-shot channel.

use serde_json::Value;
use tokio::sync::oneshot;

use super::protocol::{Changes, ProbeAction};
use crate::config::ConfigError;
use crate::config::edit::Edit;
use crate::sample::Sample;
use crate::status::{StatusReport, TopReport};

/// Why the arbiter refused a command. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No such probe in the running configuration.
    #[error("no probe named {0:?} in the running configuration")]
    UnknownProbe(String),
    /// The probe is configured but not running.
    #[error("probe {probe:?} is not running ({why})")]
    NotRunning {
        /// The probe.
        probe: String,
        /// Its state.
        why: &'static str,
    },
    /// The change makes the configuration invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A probe of the new configuration could not be built.
    #[error("probe {probe}: {error}; nothing was changed")]
    Build {
        /// The probe.
        probe: String,
        /// Why.
        error: String,
    },
    /// The request needs something this blippd does not have.
    #[error("{0}")]
    Unavailable(&'static str),
}

/// The answer channel of one command.
pub type Reply<T> = oneshot::Sender<T>;

/// One command.
#[derive(Debug)]
pub enum Command {
    /// The agent's and every probe's state.
    Status(Reply<StatusReport>),
    /// The running configuration.
    Config(Reply<Value>),
    /// Stop, start or restart a probe.
    Probe {
        /// What.
        action: ProbeAction,
        /// Which.
        name: String,
        /// The answer.
        reply: Reply<Result<Changes, CommandError>>,
    },
    /// Change the running configuration.
    Edit {
        /// The change.
        edit: Edit,
        /// The answer.
        reply: Reply<Result<Changes, CommandError>>,
    },
    /// Read the configuration file again; drop the edits.
    Reload(Reply<Result<Changes, CommandError>>),
    /// A probe's latest samples.
    Tail {
        /// Which.
        probe: String,
        /// How many.
        count: usize,
        /// The answer.
        reply: Reply<Result<Vec<Sample>, CommandError>>,
    },
    /// Poll UNIS now.
    UnisPoll(Reply<Result<(), CommandError>>),
    /// The status and the main quantities' recent points.
    Top(Reply<TopReport>),
}
