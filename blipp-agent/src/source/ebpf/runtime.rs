//! The loaded eBPF object, shared by the probes that attach its programs.

use aya::programs::TracePoint;

use super::{EbpfError, OBJECT, disk, tracefs};

/// The loaded object. Programs stay attached as long as it lives.
pub struct Kernel {
    ebpf: aya::Ebpf,
    /// Layout of `block/block_rq_complete` on this kernel, or why it is
    /// unusable (then the disk program is never attached).
    rq_complete: Result<(), String>,
}

/// Whether probes can have eBPF, and if not, why: the reason ends up in the
/// fallback log line of every probe in `auto` mode.
pub enum KernelAccess {
    /// The object is loaded.
    Loaded(Kernel),
    /// It could not be loaded.
    Unavailable(String),
}

impl KernelAccess {
    /// Loads the object; a failure is kept as the reason, not raised, so
    /// that `auto` probes can fall back.
    pub fn open() -> Self {
        match Kernel::load() {
            Ok(k) => KernelAccess::Loaded(k),
            Err(e) => KernelAccess::Unavailable(e.to_string()),
        }
    }

    /// The kernel, or the reason there is none.
    pub fn get(&mut self) -> Result<&mut Kernel, String> {
        match self {
            KernelAccess::Loaded(k) => Ok(k),
            KernelAccess::Unavailable(why) => Err(why.clone()),
        }
    }
}

impl Kernel {
    /// Loads the embedded object with globals set from this kernel's
    /// tracepoint formats. Programs are not loaded (verified) until a probe
    /// attaches them, so one rejected program costs only its own probe.
    pub fn load() -> Result<Self, EbpfError> {
        let root = tracefs::root()?;
        let mut loader = aya::EbpfLoader::new();
        let layout = disk::rq_complete_layout(&root);
        if let Ok(l) = &layout {
            loader.override_global("RQ_COMPLETE_LAYOUT", l, true);
        }
        let ebpf = loader
            .load(OBJECT)
            .map_err(|e| EbpfError::Load(Box::new(e)))?;
        Ok(Self {
            ebpf,
            rq_complete: layout.map(|_| ()).map_err(|e| e.to_string()),
        })
    }

    /// Why the block completion layout is unusable, if it is.
    pub(super) fn rq_complete_ok(&self) -> Result<(), EbpfError> {
        self.rq_complete
            .clone()
            .map_err(|problem| EbpfError::Format {
                tracepoint: "block/block_rq_complete".to_owned(),
                problem,
            })
    }

    /// Loads (verifies) `program` and attaches it to `category/name`.
    pub fn attach_tracepoint(
        &mut self,
        program: &'static str,
        category: &str,
        name: &str,
    ) -> Result<(), EbpfError> {
        let object_program = fault::substitute(program);
        let prog: &mut TracePoint = self
            .ebpf
            .program_mut(object_program)
            .ok_or(EbpfError::MissingProgram(program))?
            .try_into()
            .map_err(|e| EbpfError::Program {
                program,
                source: Box::new(e),
            })?;
        prog.load().map_err(|e| EbpfError::Program {
            program,
            source: Box::new(e),
        })?;
        prog.attach(category, name)
            .map_err(|e| EbpfError::Program {
                program,
                source: Box::new(e),
            })?;
        Ok(())
    }

    /// Moves a map out of the object, for the probe that reads it.
    pub fn take_map(&mut self, name: &'static str) -> Result<aya::maps::Map, EbpfError> {
        self.ebpf.take_map(name).ok_or(EbpfError::MissingMap(name))
    }
}

/// Test builds only: `BLIPP_FAULT_VERIFIER=<program>` makes the agent load
/// the object's `verifier_reject` program in `<program>`'s place, so that
/// the VM test can show a verifier rejection turning into a fallback.
#[cfg(feature = "fault-injection")]
mod fault {
    pub(super) fn substitute(program: &'static str) -> &'static str {
        match std::env::var("BLIPP_FAULT_VERIFIER") {
            Ok(p) if p == program => {
                tracing::warn!(program, "fault injection: loading verifier_reject instead");
                "verifier_reject"
            }
            _ => program,
        }
    }
}

/// Production builds load the programs they are asked for.
#[cfg(not(feature = "fault-injection"))]
mod fault {
    pub(super) fn substitute(program: &'static str) -> &'static str {
        program
    }
}
