//! Start-up: the probes of the local configuration are built before the
//! runtime starts its threads, because what comes with building them must
//! happen in a single-threaded process: loading the eBPF object (or taking
//! it over from the image that loaded it, see [`handover`]), the
//! re-execution that leaves the loading memory behind, forking the command
//! launcher, and dropping the capabilities that only loading needed.

use crate::config::{Config, ProbeConfig};
use crate::probe::{Built, Fault};
use crate::source::command::launcher::Launcher;
use crate::source::command::sandbox;
use crate::source::ebpf::handover::{self, Handover};
use crate::source::ebpf::{KernelAccess, caps};

use super::builder::{self, Builder};
use super::reconcile::wanted;

/// Where the eBPF programs come from, and what happens once they are
/// attached.
pub enum Start {
    /// Load them in this process and keep every capability (tests, and
    /// the library's [`run`]).
    Library,
    /// Load them in this process, then drop the capabilities only loading
    /// needed (blippd `--no-reexec`).
    InProcess,
    /// Load and attach them, then re-execute blippd so that a fresh image
    /// inherits them without what loading left in memory (see
    /// [`handover`]), and `config_file`, the text of the configuration
    /// file checked here; carry on as [`Start::InProcess`] when that
    /// fails.
    Reexec {
        /// The configuration file's text, if there is a file.
        config_file: Option<String>,
    },
    /// Take them over from the image that loaded them, then drop the
    /// capabilities only loading needed.
    Inherited(Handover),
}

/// One probe of the start-up configuration, built or not.
pub(super) struct Prebuilt {
    pub(super) config: ProbeConfig,
    pub(super) built: Result<Built, Fault>,
}

/// The probes of a configuration, built and ready to run, with the eBPF
/// object whose programs they use (it keeps them attached).
pub struct Prepared {
    pub(super) builder: Builder,
    pub(super) probes: Vec<Prebuilt>,
}

impl Prepared {
    /// Why each probe that could not be built was not, in name order.
    pub fn faults(&self) -> impl Iterator<Item = &Fault> {
        self.probes.iter().filter_map(|p| p.built.as_ref().err())
    }

    /// Whether the configuration wants probes and none of them can run:
    /// none was built and, when the run would try them again (`retries`),
    /// none failed only because of its environment.
    pub fn none_can_run(&self, retries: bool) -> bool {
        self.probes.iter().all(|p| p.built.is_err())
            && !self.probes.is_empty()
            && (!retries || self.faults().all(Fault::is_config))
    }
}

/// Builds the probes of `config`: loads the eBPF object when a probe may
/// use it (or takes it over, see [`Start`]) and attaches the programs each
/// probe asks for. Then, unless [`Start::Library`], gives up every
/// capability blippd does not use after start-up (see
/// [`caps`](crate::source::ebpf::caps)), having first forked the command
/// launcher, which keeps what switching users needs (see
/// [`launcher`](crate::source::command::launcher)). Capabilities are per
/// thread and the launcher is forked: blippd calls this before it starts
/// any other thread.
///
/// A probe that cannot be built does not stop the others: its fault is
/// kept (see [`Prepared::faults`]), naming `origin` (the configuration
/// file) when the configuration is at fault, and the caller decides
/// whether the run goes on.
pub fn prepare(config: &Config, start: Start, origin: &str) -> Prepared {
    let drop_capabilities = !matches!(start, Start::Library);
    let mut builder = match start {
        Start::Inherited(objects) => Builder::inherited(objects),
        Start::Reexec { config_file } => {
            let mut builder = opened_for(config);
            reexecute(config, &mut builder, config_file.as_deref());
            builder
        }
        Start::Library | Start::InProcess => opened_for(config),
    };
    // This image keeps running (a re-execution returns only when it
    // failed): the launcher is forked here, once, before any drop.
    let switch_caps = if drop_capabilities {
        start_launcher(config)
    } else {
        0
    };
    let probes = wanted(config)
        .into_values()
        .map(|p| {
            let built = builder.build(p, origin);
            if let Ok(b) = &built {
                tracing::debug!(probe = %p.name, module = %p.module, source = b.source.as_str(), "probe built");
            }
            Prebuilt {
                config: p.clone(),
                built,
            }
        })
        .collect();
    if let KernelAccess::Loaded(k) = builder.kernel() {
        k.loading_done();
    }
    if drop_capabilities {
        drop_to_runtime(builder.kernel(), switch_caps);
    }
    release_startup_memory();
    Prepared { builder, probes }
}

/// A builder that has opened the eBPF object when some probe of `config`
/// may use it: before the launcher is forked and capabilities dropped.
fn opened_for(config: &Config) -> Builder {
    let mut builder = Builder::new(crate::probe::agent::wants_run_time(config));
    if builder::any_wants_ebpf(config) {
        builder.open();
        if let KernelAccess::Loaded(k) = builder.kernel() {
            k.verify(&builder::programs_wanted(config));
        }
    }
    builder
}

/// blippd's first image: attaches the programs that the probes of `config`
/// use, then re-executes blippd, handing them over. Returns when there is
/// nothing to hand over (the object is not loaded) or the re-execution
/// failed; the probes are then built in this process.
///
/// The probes are built only to learn which programs they attach, and
/// silently: the next image builds them again, and says what they say
/// (fallbacks, commands) once.
fn reexecute(config: &Config, builder: &mut Builder, config_file: Option<&str>) {
    if !matches!(builder.kernel(), KernelAccess::Loaded(_)) {
        return;
    }
    // A probe that cannot be built here is not built by the next image
    // either, which says why: it does not stop the others' handover.
    tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
        for p in wanted(config)
            .into_values()
            .filter(|p| builder::wants_ebpf(p))
        {
            let _ = builder.build(p, "configuration");
        }
    });
    if let KernelAccess::Loaded(k) = builder.kernel() {
        match handover::reexecute(k, config_file) {
            Ok(never) => match never {},
            Err(e) => tracing::warn!(
                error = %e,
                "could not re-execute after loading the eBPF programs: carrying on in this process, with the memory loading took"
            ),
        }
    }
}

/// Fixes who commands run as (the start-up configuration's
/// `command_user` and `command_limits`) and forks the launcher that runs
/// and contains them, also where blippd cannot switch users. Returns the
/// capabilities blippd must keep for commands itself: `CAP_SETUID` and
/// `CAP_SETGID` when it can switch users but the launcher could not be
/// started, none otherwise.
fn start_launcher(config: &Config) -> u64 {
    let settings = &config.settings;
    sandbox::configure(sandbox::Sandbox {
        user: settings.command_user.clone(),
        limits: settings.command_limits,
    });
    let user = &settings.command_user;
    let switching = sandbox::can_switch_user();
    if !switching {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        tracing::info!(
            uid,
            command_user = %user.name,
            "blippd cannot switch users (no CAP_SETUID and CAP_SETGID): commands run as blippd's own user, without capabilities"
        );
    }
    match Launcher::start(sandbox::current()) {
        Ok(pid) if switching => {
            tracing::info!(
                pid,
                command_user = %user.name,
                uid = user.uid,
                "command launcher started: commands run as the command user"
            );
            0
        }
        Ok(pid) => {
            tracing::info!(pid, "command launcher started");
            0
        }
        Err(e) if switching => {
            tracing::warn!(
                error = %e,
                "no command launcher: blippd keeps CAP_SETUID and CAP_SETGID to run commands as the command user itself, and only their process group contains them"
            );
            sandbox::mask(&[6, 7])
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                "no command launcher: blippd runs commands itself, and only their process group contains them"
            );
            0
        }
    }
}

/// Gives up every capability blippd does not use after start-up, keeping
/// `CAP_BPF` where this kernel wants it for map reads, and `extra`.
fn drop_to_runtime(kernel: &KernelAccess, extra: u64) {
    let maps = match kernel {
        KernelAccess::Loaded(k) if !k.attached().is_empty() => Some(&**k),
        _ => None,
    };
    let readable = maps.map(|k| move || k.maps_readable());
    let check = readable.as_ref().map(|f| f as &dyn Fn() -> bool);
    let attached = if maps.is_some() {
        "eBPF programs attached"
    } else {
        "no eBPF program attached"
    };
    match caps::drop_to_runtime(check, extra) {
        Ok(d) if d.bpf_for_maps => tracing::info!(
            kept = ?caps::names(d.kept),
            "{attached}; capabilities only loading needed are dropped, with every other one blippd does not use after start-up, but this kernel wants CAP_BPF to read maps"
        ),
        Ok(d) => tracing::info!(
            kept = ?caps::names(d.kept),
            "{attached}; capabilities only loading needed are dropped, with every other one blippd does not use after start-up"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not drop capabilities after start-up");
        }
    }
}

/// Hands the heap that start-up freed back to the kernel. Loading the eBPF
/// object parses the kernel's whole BTF (aya: about 17 MB on 6.x kernels),
/// and glibc keeps freed heap of that size around (its trim threshold grows
/// with the largest block freed), which would stay in the daemon's resident
/// memory for its whole life. musl returns freed memory by itself.
fn release_startup_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks and trims glibc's own heap; it is
    // thread-safe and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
