use crate::config::ConfigError;
use crate::source::ebpf::EbpfError;
use crate::source::netlink::rtnetlink::RtnetlinkError;
use crate::source::read::FileError;

/// Why a probe could not be built or could not collect.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No registry row for this module.
    #[error("unknown probe module {0:?}")]
    UnknownModule(String),
    /// A kernel file could not be read or parsed.
    #[error(transparent)]
    File(#[from] FileError),
    /// An eBPF program or map failed.
    #[error(transparent)]
    Ebpf(#[from] EbpfError),
    /// The eBPF object is not loaded (no permission, no BPF, no tracefs):
    /// the message is the reason, for the fallback log line.
    #[error("{0}")]
    EbpfUnavailable(String),
    /// `mode: ebpf` was asked for and eBPF is not possible. (The caller
    /// names the probe in its own message.)
    #[error("mode is ebpf but eBPF is unavailable: {reason}")]
    EbpfRequired {
        /// The probe's name.
        probe: String,
        /// Why.
        reason: String,
    },
    /// The network interfaces could not be listed.
    #[error(transparent)]
    Link(#[from] RtnetlinkError),
    /// A followed process could not be found or read.
    #[error(transparent)]
    Process(#[from] super::process::ProcessError),
    /// A configured command could not run to its end.
    #[error(transparent)]
    Command(#[from] crate::source::command::CommandError),
    /// A command's output gave nothing to report.
    #[error(transparent)]
    Cmd(#[from] super::cmd::CmdError),
    /// A command's output is not JSON.
    #[error(transparent)]
    Json(#[from] super::json::JsonError),
    /// A traceroute printed no hop.
    #[error(transparent)]
    Traceroute(#[from] super::traceroute::TracerouteError),
    /// A Nagios plugin gave no status.
    #[error(transparent)]
    Nagios(#[from] super::nagios::NagiosError),
    /// A followed log file could not be read.
    #[error(transparent)]
    Tail(#[from] crate::source::tail::TailError),
    /// The probe's own options are wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
}
