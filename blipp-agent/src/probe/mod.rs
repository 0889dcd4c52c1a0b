//! Probes: one module per measured thing, each turning source records into
//! samples. [`REGISTRY`] is the one table of every probe blipp has.

pub mod agent;
mod check;
pub mod cmd;
pub(crate) mod command;
pub mod cost;
pub mod counting;
pub mod cpu;
pub mod disk;
pub mod dummy;
mod error;
mod fault;
pub mod json;
pub mod mem;
pub mod nagios;
pub mod net;
pub mod netlogger;
pub mod numa;
pub mod port;
pub mod pressure;
pub mod process;
pub mod procevents;
pub mod registration;
#[cfg(test)]
mod registry_schema;
#[cfg(test)]
pub(crate) mod testing;
pub mod traceroute;
mod track;

use crate::config::{Mode, ProbeConfig};
use crate::sample::{Name, Sample, Source, Timestamp};
use crate::source::ebpf::KernelAccess;

pub use check::check;
pub use error::ProbeError;
pub use fault::Fault;

/// Reads one quantity out of a parsed record; `None` when this kernel does
/// not provide it. Probes list their quantities as `(name, Getter)` tables.
pub type Getter<T> = fn(&T) -> Option<u64>;

/// A running probe.
pub trait Probe: Send {
    /// Reads its sources once and appends the samples to `out`. A failure
    /// of this collection is logged and counted by the caller, and the
    /// probe carries on at its next instant.
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError>;

    /// True for a probe whose collection waits on something outside blipp
    /// (a command, a Nagios plugin) for up to its timeout. The arbiter runs
    /// such collections on tokio's blocking thread pool, so that a slow
    /// command holds no runtime worker; stopping waits for a collection
    /// under way (at most its timeout) so that its samples are flushed and
    /// no command is left running.
    fn blocks(&self) -> bool {
        false
    }
}

/// A probe ready to run, and how it will measure.
pub struct Built {
    /// The probe.
    pub probe: Box<dyn Probe>,
    /// Where its numbers come from, which its samples carry.
    pub source: Source,
}

/// What a probe may use while it is built.
pub struct BuildContext<'a> {
    /// The eBPF object, or why there is none.
    pub kernel: &'a mut KernelAccess,
    /// The node's subject name.
    pub node: Name,
    /// Where probes register the eBPF programs they attached, for the
    /// `agent` probe.
    pub costs: cost::CostBoard,
}

/// How a probe measures without eBPF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// It has no eBPF variant, so nothing to fall back from: its samples
    /// always carry this source.
    Only(Source),
    /// Its eBPF variant falls back to its own /proc variant.
    Proc,
    /// It measures with eBPF only (nothing in /proc has its numbers):
    /// without eBPF it does not run, and is reported faulty with the
    /// reason.
    None,
}

impl Fallback {
    /// Whether the probe has an eBPF variant.
    pub fn has_ebpf(self) -> bool {
        matches!(self, Fallback::Proc | Fallback::None)
    }
}

/// One row of the registry.
pub struct ProbeSpec {
    /// The `probe_module` name.
    pub module: &'static str,
    /// One line for `blippcmd probes` and the docs.
    pub summary: &'static str,
    /// What happens without eBPF.
    pub fallback: Fallback,
    /// The eBPF programs its eBPF variant attaches, in groups as the
    /// kernel module declares them: verified together, in parallel,
    /// before the probes are built (see [`Kernel::verify`]).
    ///
    /// [`Kernel::verify`]: crate::source::ebpf::Kernel::verify
    pub programs: &'static [&'static [&'static str]],
    /// What its keys make blippd touch, which the trust policy checks
    /// before a remote configuration may set them.
    pub reach: Reach,
    /// Builds the probe from its configuration.
    pub build: fn(&ProbeConfig, &mut BuildContext<'_>) -> Result<Built, ProbeError>,
    /// The keys of the options type `build` parses
    /// ([`crate::config::option_keys`]): what the schema's
    /// `$defs/options_<module>` must list, checked by a test.
    pub options: fn() -> Option<&'static [&'static str]>,
}

/// The options of a probe that has no keys of its own.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// What a probe module's own keys can make blippd touch beyond kernel
/// counters (the keys every probe has are classified by
/// [`crate::trust`] itself).
#[derive(Clone, Copy, Debug)]
pub enum Reach {
    /// It reads and reports: `paths` name its keys that name files or
    /// directories it opens, `urls` those that name where data goes; its
    /// other keys only steer it.
    Keys {
        /// Keys naming files or directories.
        paths: &'static [&'static str],
        /// Keys naming destinations.
        urls: &'static [&'static str],
    },
    /// It runs a program built from its keys (any key may be a `$key`
    /// word of the command).
    Program,
}

impl Reach {
    /// Keys that steer only.
    pub const NONE: Reach = Reach::Keys {
        paths: &[],
        urls: &[],
    };
}

/// Every probe blipp has. Adding a probe is one module and one row here,
/// plus its `$defs/options_<module>` in the configuration schema; the
/// schema's list of modules is generated from this table (see
/// `registry_schema`).
pub static REGISTRY: &[ProbeSpec] = &[
    cpu::SPEC,
    mem::SPEC,
    net::SPEC,
    disk::SPEC,
    port::SPEC,
    process::SPEC,
    numa::SPEC,
    pressure::SPEC,
    counting::SPEC,
    counting::SPEC_ORIGINAL,
    cmd::SPEC,
    cmd::SPEC_ORIGINAL,
    nagios::SPEC,
    json::SPEC,
    json::SPEC_CEPH,
    traceroute::SPEC,
    traceroute::SPEC_ORIGINAL,
    procevents::SPEC,
    agent::SPEC,
    netlogger::SPEC,
    netlogger::SPEC_ORIGINAL,
    dummy::SPEC,
    registration::SPEC,
];

/// The registry entry for `module`.
pub fn spec(module: &str) -> Option<&'static ProbeSpec> {
    REGISTRY.iter().find(|s| s.module == module)
}

/// Builds a configured probe.
pub fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let spec =
        spec(&config.module).ok_or_else(|| ProbeError::UnknownModule(config.module.clone()))?;
    (spec.build)(config, ctx)
}

/// Decides between a probe's eBPF and /proc variants according to its
/// mode: `auto` falls back with one log line naming the probe and the
/// reason, `ebpf` turns the failure into an error, `proc` never tries.
pub fn choose<E, P>(
    config: &ProbeConfig,
    ctx: &mut BuildContext<'_>,
    ebpf: E,
    proc: P,
) -> Result<Built, ProbeError>
where
    E: FnOnce(&mut BuildContext<'_>) -> Result<Box<dyn Probe>, ProbeError>,
    P: FnOnce(&mut BuildContext<'_>) -> Result<Box<dyn Probe>, ProbeError>,
{
    let proc_built = |ctx: &mut BuildContext<'_>, proc: P| {
        Ok(Built {
            probe: proc(ctx)?,
            source: Source::Proc,
        })
    };
    match config.mode {
        Mode::Proc => proc_built(ctx, proc),
        Mode::Ebpf => Ok(Built {
            probe: ebpf(ctx).map_err(|e| ProbeError::EbpfRequired {
                probe: config.name.clone(),
                reason: e.to_string(),
            })?,
            source: Source::Ebpf,
        }),
        Mode::Auto => match ebpf(ctx) {
            Ok(probe) => Ok(Built {
                probe,
                source: Source::Ebpf,
            }),
            Err(e) => {
                tracing::warn!(probe = %config.name, reason = %e, "eBPF unavailable, falling back to /proc");
                proc_built(ctx, proc)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn registry_rows_are_unique_and_described() {
        let names: Vec<&str> = REGISTRY.iter().map(|s| s.module).collect();
        let unique: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "duplicate module names");
        for s in REGISTRY {
            assert!(!s.summary.is_empty(), "{} has no summary", s.module);
        }
    }
}
