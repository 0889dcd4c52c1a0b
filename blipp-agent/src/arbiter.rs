//! Runs the configured probes: builds each one (choosing eBPF or /proc),
//! drives it along its schedule, and hands its batches to the reporter.
//! A new configuration (from UNIS, an edit or a reload through the control
//! socket) restarts only the probes whose configuration changed; service
//! status OFF stops them all, ON starts them again. Stopping flushes every
//! probe's pending samples. [`steer`] answers the control socket.

mod alarm;
mod faulty;
mod retry;
mod steer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{Config, LocalSource, Mode, ProbeConfig, Status};
use crate::control::Command;
use crate::control::protocol::{Changes, Failure};
use crate::probe::cost::CostBoard;
use crate::probe::{self, BuildContext, Built, Fallback, Fault, Probe, ProbeError};
use crate::report::collector::Collector;
use crate::report::{Batch, Reporter, Route};
use crate::sample::{Name, Sample, Source, Timestamp};
use crate::schedule::{Instants, backoff};
use crate::source::command::launcher::Launcher;
use crate::source::command::sandbox;
use crate::source::ebpf::handover::{self, Handover};
use crate::source::ebpf::{Kernel, KernelAccess, caps, klog};
use crate::status::{ProbeHealth, ProbeReport, ProbeState};
use alarm::Alarms;
use faulty::{Faulty, failure};
use retry::Retries;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A run that ends by itself (`--once`, `--duration`) could not write
    /// everything it collected to stdout or a data file (each failure was
    /// logged when it happened).
    #[error("{failures} write(s) to stdout or a data file failed; see the log")]
    Undelivered {
        /// Failed writes and opens of data files.
        failures: u64,
    },
}

/// How long to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RunLength {
    /// Until the shutdown future completes.
    #[default]
    UntilStopped,
    /// Collect every probe once, report, return.
    Once,
    /// Run this long (or until stopped), then flush and return.
    For(Duration),
}

/// Options of a run that do not come from the configuration file.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// How long.
    pub length: RunLength,
    /// Print samples on stdout even when they also go elsewhere.
    pub stdout: bool,
}

/// What one probe ended up as, for the start-up log and `blippcmd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeStatus {
    /// The probe's name.
    pub name: String,
    /// Its module.
    pub module: String,
    /// `ebpf` or `proc`.
    pub source: &'static str,
}

/// Where the run's samples and configuration changes come from and go,
/// besides stdout and data files.
#[derive(Debug, Default)]
pub struct Links {
    /// New configurations (from UNIS): applied as they come, restarting
    /// only the probes whose configuration changed.
    pub updates: Option<watch::Receiver<Config>>,
    /// The UNIS/MS sink, which receives every probe's batches.
    pub unis: Option<mpsc::Sender<Batch>>,
    /// Commands from the control socket.
    pub commands: Option<mpsc::Receiver<Command>>,
    /// Where the local configuration comes from, for `reload`.
    pub reload: Option<LocalSource>,
}

struct Running {
    config: ProbeConfig,
    built: Built,
}

fn probe_wants_ebpf(p: &ProbeConfig) -> bool {
    p.mode != Mode::Proc && probe::spec(&p.module).is_some_and(|s| s.fallback == Fallback::Proc)
}

fn wants_ebpf(config: &Config) -> bool {
    config
        .probes
        .iter()
        .any(|p| p.status == Status::On && probe_wants_ebpf(p))
}

/// The probes of a configuration, built and ready to run, with the eBPF
/// object whose programs they use (it keeps them attached).
pub struct Prepared {
    kernel: KernelAccess,
    /// Whether loading the object was tried (some probe wanted eBPF).
    kernel_tried: bool,
    running: Vec<Running>,
    /// The probes that could not be built.
    faulty: Vec<Faulty>,
    costs: CostBoard,
}

impl Prepared {
    /// Why each probe that could not be built was not, in name order.
    pub fn faults(&self) -> impl Iterator<Item = &Fault> {
        self.faulty.iter().map(|f| &f.fault)
    }

    /// Whether the configuration wants probes and none of them can run:
    /// none was built and, when the run would try them again (`retries`),
    /// none failed only because of its environment.
    pub fn none_can_run(&self, retries: bool) -> bool {
        self.running.is_empty()
            && !self.faulty.is_empty()
            && (!retries || self.faulty.iter().all(|f| f.fault.is_config()))
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

/// The eBPF object when some probe of `config` may use it, or why not.
fn open_for(config: &Config) -> KernelAccess {
    let kernel = if wants_ebpf(config) {
        KernelAccess::open()
    } else {
        KernelAccess::Unavailable("no probe asks for eBPF".to_owned())
    };
    if let KernelAccess::Unavailable(why) = &kernel {
        tracing::debug!(reason = %why, "eBPF object not loaded");
    }
    kernel
}

/// blippd's first image: attaches the programs that the probes of `config`
/// use, then re-executes blippd, handing them over. Returns when there is
/// nothing to hand over (the object is not loaded) or the re-execution
/// failed; the probes are then built in this process.
///
/// The probes are built only to learn which programs they attach, and
/// silently: the next image builds them again, and says what they say
/// (fallbacks, commands) once.
fn reexecute(config: &Config, kernel: &mut KernelAccess, config_file: Option<&str>) {
    if !matches!(kernel, KernelAccess::Loaded(_)) {
        return;
    }
    // A probe that cannot be built here is not built by the next image
    // either, which says why: it does not stop the others' handover.
    tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
        let mut ctx = BuildContext {
            kernel: &mut *kernel,
            node: Name::from("node"),
            costs: CostBoard::default(),
        };
        for p in wanted(config).into_values().filter(|p| probe_wants_ebpf(p)) {
            let _ = probe::build(p, &mut ctx);
        }
    });
    if let KernelAccess::Loaded(k) = kernel {
        match handover::reexecute(k, config_file) {
            Ok(never) => match never {},
            Err(e) => tracing::warn!(
                error = %e,
                "could not re-execute after loading the eBPF programs: carrying on in this process, with the memory loading took"
            ),
        }
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
    let costs = CostBoard::default();
    let drop_capabilities = !matches!(start, Start::Library);
    let (kernel, kernel_tried) = match start {
        Start::Inherited(objects) => (
            KernelAccess::Loaded(Box::new(Kernel::inherit(objects))),
            true,
        ),
        Start::Reexec { config_file } => {
            let mut kernel = open_for(config);
            reexecute(config, &mut kernel, config_file.as_deref());
            (kernel, wants_ebpf(config))
        }
        Start::Library | Start::InProcess => (open_for(config), wants_ebpf(config)),
    };
    // This image keeps running (a re-execution returns only when it
    // failed): the launcher is forked here, once, before any drop.
    let switch_caps = if drop_capabilities {
        start_launcher(config)
    } else {
        0
    };
    let (mut kernel, running, faulty) = build_all(config, &costs, kernel, origin);
    if let KernelAccess::Loaded(k) = &mut kernel {
        k.loading_done();
    }
    if drop_capabilities {
        drop_to_runtime(&kernel, switch_caps);
    }
    release_startup_memory();
    Prepared {
        kernel,
        kernel_tried,
        running,
        faulty,
        costs,
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

/// Builds the probes of `config` with `kernel`, which keeps the eBPF
/// programs attached and must outlive the probes; those that cannot be
/// built are returned with their fault.
fn build_all(
    config: &Config,
    costs: &CostBoard,
    mut kernel: KernelAccess,
    origin: &str,
) -> (KernelAccess, Vec<Running>, Vec<Faulty>) {
    let mut ctx = BuildContext {
        kernel: &mut kernel,
        node: Name::from("node"),
        costs: costs.clone(),
    };
    let mut running = Vec::new();
    let mut faulty = Vec::new();
    for p in &config.probes {
        if p.status == Status::Off || config.status == Status::Off {
            tracing::info!(probe = %p.name, "status OFF, not started");
            continue;
        }
        match probe::build(p, &mut ctx) {
            Ok(built) => {
                tracing::debug!(probe = %p.name, module = %p.module, source = built.source.as_str(), "probe built");
                running.push(Running {
                    config: p.clone(),
                    built,
                });
            }
            Err(e) => faulty.push(Faulty {
                config: p.clone(),
                fault: Fault::of(p, e, origin),
            }),
        }
    }
    (kernel, running, faulty)
}

/// A probe task.
struct Task {
    /// Unique per spawn: a restarted probe is a new task.
    id: u64,
    config: ProbeConfig,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
    /// Its schedule ended (it said so on the `done` channel).
    finished: bool,
    /// eBPF or /proc.
    source: Source,
}

/// The probes `config` wants running: none when the service is OFF,
/// else those whose own status is ON.
fn wanted(config: &Config) -> BTreeMap<&str, &ProbeConfig> {
    if config.status == Status::Off {
        return BTreeMap::new();
    }
    config
        .probes
        .iter()
        .filter(|p| p.status == Status::On)
        .map(|p| (p.name.as_str(), p))
        .collect()
}

/// Starts, stops and restarts probe tasks. The kernel handle keeps the
/// eBPF programs attached and outlives the probes.
struct Supervisor {
    kernel: KernelAccess,
    kernel_tried: bool,
    costs: CostBoard,
    /// Probes built before the run (by [`prepare`]), used when the
    /// configuration still wants them as they are.
    prepared: Vec<Running>,
    /// Probes [`prepare`] could not build, whose fault stands while the
    /// configuration wants them as they are.
    prepared_faults: Vec<Faulty>,
    tasks: BTreeMap<String, Task>,
    tx: mpsc::Sender<Batch>,
    done: mpsc::UnboundedSender<u64>,
    spawned: u64,
    options: RunOptions,
    unis: bool,
    /// The record of every probe that ran, by name (kept after it stops,
    /// so that `status` and `tail` show its last collections).
    health: BTreeMap<String, Arc<ProbeHealth>>,
    /// Probes the configuration wants that could not be built, as they
    /// were configured, and why: their configuration is at fault, or (in a
    /// `--once` run, which has no later) their environment.
    failed: BTreeMap<String, (ProbeConfig, String)>,
    /// Probes whose environment failed, waiting to be built again.
    retries: Retries,
    /// The one timer every probe waits on.
    alarms: Alarms,
}

impl Supervisor {
    fn build(&mut self, p: &ProbeConfig) -> Result<Built, Fault> {
        if let Some(i) = self.prepared.iter().position(|r| r.config == *p) {
            return Ok(self.prepared.swap_remove(i).built);
        }
        if let Some(i) = self.prepared_faults.iter().position(|f| f.config == *p) {
            return Err(self.prepared_faults.swap_remove(i).fault);
        }
        if !self.kernel_tried && probe_wants_ebpf(p) {
            self.kernel_tried = true;
            self.kernel = KernelAccess::open();
            if let KernelAccess::Unavailable(why) = &self.kernel {
                tracing::debug!(reason = %why, "eBPF object not loaded");
            }
        }
        let mut ctx = BuildContext {
            kernel: &mut self.kernel,
            node: Name::from("node"),
            costs: self.costs.clone(),
        };
        probe::build(p, &mut ctx).map_err(|e| Fault::of(p, e, "configuration"))
    }

    /// Starts `r`'s task. Probes started together get the same `start`, so
    /// that those on the same schedule share every instant, and one wakeup.
    fn spawn(&mut self, r: Running, start: Timestamp) -> ProbeStatus {
        let status = ProbeStatus {
            name: r.config.name.clone(),
            module: r.config.module.clone(),
            source: r.built.source.as_str(),
        };
        tracing::info!(probe = %status.name, module = %status.module, source = status.source, "probe started");
        // Samples with nowhere else to go are printed, so that the default
        // configuration (no server, no file) shows them.
        let elsewhere = self.unis || r.config.ms_url.is_some() || r.config.data_file.is_some();
        let route = Route {
            stdout: self.options.stdout || !elsewhere,
            data_file: r.config.data_file.clone(),
            unis: self.unis,
        };
        let collector = Collector::new(&r.config.name, route, r.config.reporting_params);
        let (stop, stop_rx) = watch::channel(false);
        let tx = self.tx.clone();
        let done = self.done.clone();
        let once = self.options.length == RunLength::Once;
        self.spawned += 1;
        let id = self.spawned;
        let config = r.config.clone();
        let costs = self.costs.clone();
        let health = ProbeHealth::new();
        self.health.insert(config.name.clone(), Arc::clone(&health));
        self.failed.remove(&config.name);
        self.retries.remove(&config.name);
        let source = r.built.source;
        let wires = Wires {
            start,
            tx,
            stop: stop_rx,
            once,
            costs,
            health,
            alarms: self.alarms.clone(),
        };
        let handle = tokio::spawn(async move {
            drive(r, collector, wires).await;
            let _ = done.send(id);
        });
        self.tasks.insert(
            config.name.clone(),
            Task {
                id,
                config,
                stop,
                handle,
                finished: false,
                source,
            },
        );
        status
    }

    /// Starts every probe `config` wants. The local configuration's probes
    /// were built by [`prepare`]; one that cannot be built (there, or now
    /// because UNIS changed or added it) is logged once and left out, or
    /// tried again later when its environment failed.
    fn start_all(&mut self, config: &Config) -> Vec<ProbeStatus> {
        for p in &config.probes {
            if p.status == Status::Off || config.status == Status::Off {
                tracing::info!(probe = %p.name, "status OFF, not started");
            }
        }
        let mut built = Vec::new();
        for p in wanted(config).into_values() {
            match self.build(p) {
                Ok(b) => built.push(Running {
                    config: p.clone(),
                    built: b,
                }),
                Err(fault) => self.fault(p, fault),
            }
        }
        let start = Timestamp::now();
        let statuses = built.into_iter().map(|r| self.spawn(r, start)).collect();
        self.publish_failed();
        statuses
    }

    /// Stops a probe, flushing its pending samples.
    async fn stop(&mut self, name: &str) {
        if let Some(task) = self.tasks.remove(name) {
            let _ = task.stop.send(true);
            if let Err(e) = task.handle.await {
                tracing::error!(probe = name, error = %e, "probe task failed");
            }
        }
    }

    /// Moves to `config`: stops the probes it no longer wants, restarts
    /// those whose configuration changed, starts new ones. The new probes
    /// are built before any is stopped; a probe known not to build as it
    /// is configured is left to its fault (or its next attempt). `strict`
    /// (a change through the control socket) refuses the whole change
    /// when a probe it builds cannot be built, and nothing changes;
    /// otherwise (UNIS) that probe is logged and left out, and the others
    /// run on.
    async fn apply(&mut self, config: &Config, strict: bool) -> Result<Changes, Failure> {
        let wanted = wanted(config);
        let mut builds = Vec::new();
        for (name, p) in &wanted {
            if !self.tasks.get(*name).is_some_and(|t| t.config == **p) && !self.known_fault(p) {
                builds.push(*p);
            }
        }
        let mut built = Vec::new();
        let mut failed = Vec::new();
        for p in builds {
            match self.build(p) {
                Ok(b) => built.push(Running {
                    config: p.clone(),
                    built: b,
                }),
                Err(fault) => failed.push((p, fault)),
            }
        }
        if strict && let Some((p, fault)) = failed.first() {
            return Err(failure(p, fault));
        }
        let mut changes = Changes::default();
        let names: Vec<String> = self.tasks.keys().cloned().collect();
        for name in names {
            let keep = wanted
                .get(name.as_str())
                .is_some_and(|p| self.tasks.get(&name).is_some_and(|t| t.config == **p));
            if keep {
                continue;
            }
            self.stop(&name).await;
            if wanted.contains_key(name.as_str()) {
                tracing::info!(probe = %name, "probe configuration changed: restarting it");
                changes.restarted.push(name);
            } else {
                tracing::info!(probe = %name, "probe stopped by the configuration");
                changes.stopped.push(name);
            }
        }
        let start = Timestamp::now();
        for r in built {
            if !changes.restarted.contains(&r.config.name) {
                changes.started.push(r.config.name.clone());
            }
            self.spawn(r, start);
        }
        self.failed
            .retain(|name, _| wanted.contains_key(name.as_str()));
        self.retries
            .retain(|p| wanted.get(p.name.as_str()).is_some_and(|w| **w == *p));
        changes.failed = failed.iter().map(|(p, f)| failure(p, f)).collect();
        for (p, fault) in failed {
            self.fault(p, fault);
        }
        self.health
            .retain(|name, _| config.probes.iter().any(|p| p.name == *name));
        self.publish_failed();
        Ok(changes)
    }

    /// Builds probe `name` again from its configuration and replaces its
    /// task (its pending samples are flushed first).
    async fn restart(&mut self, name: &str) -> Result<(), Failure> {
        let Some(config) = self.tasks.get(name).map(|t| t.config.clone()) else {
            return Err(Failure {
                probe: name.to_owned(),
                error: "not running".to_owned(),
            });
        };
        let built = self.build(&config).map_err(|f| failure(&config, &f))?;
        self.stop(name).await;
        tracing::info!(probe = %name, "probe restarted through the control socket");
        self.spawn(Running { config, built }, Timestamp::now());
        Ok(())
    }

    /// Every probe of `config`, as `blippcmd status` shows it.
    fn report(&self, config: &Config) -> Vec<ProbeReport> {
        config
            .probes
            .iter()
            .map(|p| {
                let state = if config.status == Status::Off || p.status == Status::Off {
                    ProbeState::Off
                } else {
                    match self.tasks.get(&p.name) {
                        Some(t) if t.finished => ProbeState::Finished,
                        Some(_) => ProbeState::Running,
                        None if self.retries.get(&p.name).is_some() => ProbeState::Retrying,
                        None => ProbeState::Failed,
                    }
                };
                let schedule = serde_json::json!({
                    "collection_schedule": p.raw.get("collection_schedule"),
                    "schedule_params": p.raw.get("schedule_params"),
                });
                let mut r =
                    ProbeReport::new(&p.name, &p.module, state, mode_name(p.mode), schedule);
                r.source = self
                    .tasks
                    .get(&p.name)
                    .map(|t| t.source.as_str().to_owned());
                if let Some(h) = self.health.get(&p.name) {
                    h.fill(&mut r);
                }
                if r.state == ProbeState::Failed
                    && let Some(e) = self.failed.get(&p.name)
                {
                    r.last_error = Some(e.1.clone());
                }
                if r.state == ProbeState::Retrying
                    && let Some(retry) = self.retries.get(&p.name)
                {
                    r.last_error = Some(retry.error.clone());
                    r.attempts = retry.attempts;
                    let wait = retry
                        .at
                        .saturating_duration_since(tokio::time::Instant::now());
                    r.next_attempt = Some(Timestamp::now().0 + wait.as_micros() as u64);
                }
                r
            })
            .collect()
    }

    async fn stop_all(&mut self) {
        let names: Vec<String> = self.tasks.keys().cloned().collect();
        for name in names {
            self.stop(&name).await;
        }
    }

    /// Marks the task `id` finished.
    fn finished(&mut self, id: u64) {
        if let Some(t) = self.tasks.values_mut().find(|t| t.id == id) {
            t.finished = true;
        }
    }

    /// Whether every task has finished its schedule (or none runs) and
    /// no probe waits to be built again.
    fn all_finished(&self) -> bool {
        self.tasks.values().all(|t| t.finished) && self.retries.is_empty()
    }
}

/// The configured name of a mode.
fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Auto => "auto",
        Mode::Ebpf => "ebpf",
        Mode::Proc => "proc",
    }
}

/// Runs the probes of `config` until `length` is reached or `shutdown`
/// completes, following the configurations that arrive on
/// `links.updates`; then flushes everything and returns what started
/// first. Without updates (or with `--once`), the run also ends when every
/// probe has finished its schedule.
pub async fn run(
    config: &Config,
    options: RunOptions,
    links: Links,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Vec<ProbeStatus>, RunError> {
    run_prepared(
        config,
        prepare(config, Start::Library, "configuration"),
        options,
        links,
        shutdown,
    )
    .await
}

/// [`run`] with probes built by [`prepare`] (perhaps for another
/// configuration: what `config` wants as it was built is used, the rest is
/// built now, and built probes it does not want are dropped unused).
pub async fn run_prepared(
    config: &Config,
    prepared: Prepared,
    options: RunOptions,
    links: Links,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Vec<ProbeStatus>, RunError> {
    let Prepared {
        mut kernel,
        kernel_tried,
        running,
        faulty,
        costs,
    } = prepared;
    if let KernelAccess::Loaded(k) = &mut kernel
        && let Some(logger) = k.take_logger()
        && let Err(e) = klog::spawn(logger)
    {
        tracing::warn!(error = %e, "the eBPF programs' log records cannot be read");
    }
    let (reporter, tx) = Reporter::new(64, links.unis.clone());
    let reporter = tokio::spawn(reporter.run());
    let (done, mut finished) = mpsc::unbounded_channel();
    let (alarms, _timer) = Alarms::start();
    let once = options.length == RunLength::Once;
    let length = options.length;
    let mut sup = Supervisor {
        kernel,
        kernel_tried,
        costs,
        prepared: running,
        prepared_faults: faulty,
        tasks: BTreeMap::new(),
        tx,
        done,
        spawned: 0,
        options,
        unis: links.unis.is_some(),
        health: BTreeMap::new(),
        failed: BTreeMap::new(),
        retries: Retries::default(),
        alarms,
    };
    let statuses = sup.start_all(config);
    // Built for a configuration that no longer wants them: never run.
    sup.prepared.clear();
    sup.prepared_faults.clear();
    let mut updates = if once { None } else { links.updates };
    let mut commands = if once { None } else { links.commands };
    let mut steer = steer::Steer::new(config, links.reload);
    let limit = async {
        match length {
            RunLength::For(d) => tokio::time::sleep(d).await,
            _ => std::future::pending().await,
        }
    };
    tokio::pin!(limit, shutdown);
    loop {
        // A run whose probes were steered through the control socket goes
        // on until stopped: the operator may start them again.
        if updates.is_none() && sup.all_finished() && !steer.steered() {
            break;
        }
        let next_retry = sup.retries.next_at();
        tokio::select! {
            Some(id) = finished.recv() => sup.finished(id),
            () = async {
                match next_retry {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => sup.retry_due(),
            changed = async {
                match &mut updates {
                    Some(u) => u.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                match changed {
                    Ok(()) => {
                        let next = updates.as_mut().map(|u| u.borrow_and_update().clone());
                        if let Some(next) = next {
                            let current = steer.rebase(next);
                            // Not strict: failures are logged and kept
                            // for `status`.
                            let _ = sup.apply(&current, false).await;
                        }
                    }
                    Err(_) => updates = None,
                }
            }
            command = async {
                match &mut commands {
                    Some(c) => c.recv().await,
                    None => std::future::pending().await,
                }
            } => match command {
                Some(command) => steer.handle(command, &mut sup).await,
                None => commands = None,
            },
            () = &mut limit => break,
            () = &mut shutdown => {
                tracing::info!("stopping");
                break;
            }
        }
    }
    sup.stop_all().await;
    drop(sup);
    let failures = match reporter.await {
        Ok(failures) => failures,
        Err(e) => {
            tracing::error!(error = %e, "reporter task failed");
            1
        }
    };
    if failures > 0 && length != RunLength::UntilStopped {
        return Err(RunError::Undelivered { failures });
    }
    Ok(statuses)
}

/// What a probe's task is connected to.
struct Wires {
    /// Where the schedule starts when it names no start of its own.
    start: Timestamp,
    /// To the reporter.
    tx: mpsc::Sender<Batch>,
    /// Set when the probe must stop.
    stop: watch::Receiver<bool>,
    /// Collect once, now, and end.
    once: bool,
    /// The agent's own cost, which the `agent` probe publishes.
    costs: CostBoard,
    /// The probe's record for `status` and `tail`.
    health: Arc<ProbeHealth>,
    /// Where it waits for its instants.
    alarms: Alarms,
}

/// One probe's life: wait for the next instant, collect, report.
async fn drive(mut r: Running, mut collector: Collector, wires: Wires) {
    let Wires {
        start,
        tx,
        mut stop,
        once,
        costs,
        health,
        alarms,
    } = wires;
    // `next_after` takes an instant that is less than an interval late, so
    // the first one (the start) is collected even though the clock has
    // moved on since.
    let mut instants: Instants = r.config.schedule.instants(start);
    let mut last_print = None;
    let cost_subject = Name::from(format!("probe:{}", r.config.name));
    loop {
        let now = Timestamp::now();
        let at = if once {
            Some(now)
        } else {
            instants.next_after(now)
        };
        let Some(at) = at else { break };
        tokio::select! {
            () = alarms.until(at) => {}
            _ = stop.changed() => break,
        }
        let ts = Timestamp::now();
        let started = std::time::Instant::now();
        let before = collector.buffer().len();
        let result = if r.built.probe.blocks() {
            match collect_blocking(r.built.probe, ts, collector.buffer()).await {
                Some((probe, result)) => {
                    r.built.probe = probe;
                    result
                }
                None => break,
            }
        } else {
            r.built.probe.collect(ts, collector.buffer())
        };
        if instants.observes() {
            // A failed collection counts as a change: something happened.
            let print = result
                .is_ok()
                .then(|| backoff::fingerprint(&collector.buffer()[before..]));
            instants.observe(print.is_none() || print != last_print);
            last_print = print;
        }
        if let Err(e) = &result {
            tracing::warn!(probe = %r.config.name, error = %e, "collection failed");
        }
        let took = started.elapsed();
        tracing::trace!(probe = %r.config.name, took_us = took.as_micros(), "collected");
        health.collected(
            ts,
            took,
            &collector.buffer()[before..],
            result.as_ref().err().map(|e| e as &dyn std::error::Error),
        );
        // The agent's own cost, which the `agent` probe publishes.
        costs.record(&cost_subject, took.as_secs_f64());
        if let Some(batch) = collector.collected()
            && tx.send(batch).await.is_err()
        {
            return;
        }
        if once || *stop.borrow() {
            break;
        }
    }
    if let Some(batch) = collector.take() {
        let _ = tx.send(batch).await;
    }
}

/// One collection of a probe that [`blocks`](crate::probe::Probe::blocks),
/// on the blocking thread pool. The probe and the buffer travel to that
/// thread and back (the buffer keeps its allocation). `None` when the
/// collection panicked: the probe is gone, and its task ends.
async fn collect_blocking(
    mut probe: Box<dyn Probe>,
    ts: Timestamp,
    buffer: &mut Vec<Sample>,
) -> Option<(Box<dyn Probe>, Result<(), ProbeError>)> {
    let mut samples = std::mem::take(buffer);
    let joined = tokio::task::spawn_blocking(move || {
        let result = probe.collect(ts, &mut samples);
        (probe, samples, result)
    })
    .await;
    match joined {
        Ok((probe, samples, result)) => {
            *buffer = samples;
            Some((probe, result))
        }
        Err(e) => {
            tracing::error!(error = %e, "probe collection panicked; the probe stops");
            None
        }
    }
}
