//! Builds probes against the run's one eBPF object. The object is opened
//! at most once, by the first build that may use it (or by start-up, which
//! opens it before forking the launcher and dropping capabilities), and
//! kept for the whole run: it holds the programs attached, so it must
//! outlive every probe built with it.

use crate::config::{Config, Mode, ProbeConfig, Status};
use crate::probe::cost::CostBoard;
use crate::probe::{self, BuildContext, Built, Fault};
use crate::sample::Name;
use crate::source::ebpf::handover::Handover;
use crate::source::ebpf::{Kernel, KernelAccess};

/// What every probe of a run is built with.
pub(super) struct Builder {
    kernel: KernelAccess,
    /// Whether opening the eBPF object was tried: a failure is kept as the
    /// reason, and not tried again.
    tried: bool,
    /// Whether opening it turns the kernel's BPF run-time statistics on
    /// (see [`probe::agent::wants_run_time`]).
    run_time_stats: bool,
    costs: CostBoard,
}

impl Builder {
    /// A builder that has not opened the eBPF object yet.
    pub(super) fn new(run_time_stats: bool) -> Self {
        Self {
            kernel: KernelAccess::Unavailable("no probe asks for eBPF".to_owned()),
            tried: false,
            run_time_stats,
            costs: CostBoard::default(),
        }
    }

    /// A builder with the programs the image that loaded them handed over.
    pub(super) fn inherited(objects: Handover) -> Self {
        Self {
            kernel: KernelAccess::Loaded(Box::new(Kernel::inherit(objects))),
            tried: true,
            run_time_stats: false,
            costs: CostBoard::default(),
        }
    }

    /// Opens the eBPF object unless that was tried already.
    pub(super) fn open(&mut self) {
        if self.tried {
            return;
        }
        self.tried = true;
        self.kernel = KernelAccess::open(self.run_time_stats);
        if let KernelAccess::Unavailable(why) = &self.kernel {
            tracing::debug!(reason = %why, "eBPF object not loaded");
        }
    }

    /// Builds `p`, opening the eBPF object first when `p` may use it; a
    /// configuration fault names `origin`.
    pub(super) fn build(&mut self, p: &ProbeConfig, origin: &str) -> Result<Built, Fault> {
        if wants_ebpf(p) {
            self.open();
        }
        let mut ctx = BuildContext {
            kernel: &mut self.kernel,
            node: Name::from("node"),
            costs: self.costs.clone(),
        };
        probe::build(p, &mut ctx).map_err(|e| Fault::of(p, e, origin))
    }

    /// The eBPF object, or why there is none.
    pub(super) fn kernel(&mut self) -> &mut KernelAccess {
        &mut self.kernel
    }

    /// The agent's own cost, shared with the `agent` probe.
    pub(super) fn costs(&self) -> &CostBoard {
        &self.costs
    }
}

/// Whether `p` may use the eBPF object: it has an eBPF variant and its
/// mode allows it.
pub(super) fn wants_ebpf(p: &ProbeConfig) -> bool {
    p.mode != Mode::Proc && probe::spec(&p.module).is_some_and(|s| s.fallback.has_ebpf())
}

/// Whether some probe of `config` that is ON may use the eBPF object.
pub(super) fn any_wants_ebpf(config: &Config) -> bool {
    config
        .probes
        .iter()
        .any(|p| p.status == Status::On && wants_ebpf(p))
}

/// The eBPF programs the probes `config` wants that may use eBPF attach,
/// each once.
pub(super) fn programs_wanted(config: &Config) -> Vec<&'static str> {
    let mut programs: Vec<&'static str> = Vec::new();
    for p in super::reconcile::wanted(config)
        .into_values()
        .filter(|p| wants_ebpf(p))
    {
        let groups = probe::spec(&p.module).map_or(&[][..], |s| s.programs);
        for &name in groups.iter().flat_map(|g| g.iter()) {
            if !programs.contains(&name) {
                programs.push(name);
            }
        }
    }
    programs
}
