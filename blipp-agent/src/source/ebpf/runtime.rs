//! The loaded eBPF object, shared by the probes that attach its programs.
//!
//! Loading the object creates its maps and fills in the programs' globals
//! (struct offsets from the kernel's BTF, tracepoint field offsets from
//! tracefs). Programs are verified when the configuration's probes may
//! use them (together, in parallel: [`Kernel::verify`]) and attached one
//! by one when a probe asks for them, so a program this kernel rejects
//! costs only the probes that need it, and the fallback line names it.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use aya::programs::{BtfTracePoint, TracePoint};
use blipp_common::disk::{BioLayout, RequestLayout};
use blipp_common::net::NetLayout;
use blipp_common::process::TaskLayout;

use super::btf::Btf;
use super::handover::Handover;
use super::klog::{self, KernelLogger, TracingLog};
use super::{EbpfError, OBJECT, ProgramHandle, disk, net, process, tracefs};

/// How a program attaches.
#[derive(Clone, Copy, Debug)]
enum Hook {
    /// A BTF tracepoint (`tp_btf`), by category and event name (the
    /// category matters only to fault injection, which loads a classic
    /// tracepoint program in its place).
    Btf(&'static str, &'static str),
    /// A classic tracepoint, by category and name.
    Classic(&'static str, &'static str),
}

/// Every program of the object: where it attaches and the global it needs.
const PROGRAMS: &[(&str, Hook, &str)] = &[
    (
        disk::COMPLETE_PROGRAM,
        Hook::Btf("block", "block_rq_complete"),
        "REQUEST_LAYOUT",
    ),
    (
        "block_getrq",
        Hook::Classic("block", "block_getrq"),
        "GETRQ_LAYOUT",
    ),
    (
        "block_bio_backmerge",
        Hook::Classic("block", "block_bio_backmerge"),
        "BACKMERGE_LAYOUT",
    ),
    (
        "block_bio_frontmerge",
        Hook::Classic("block", "block_bio_frontmerge"),
        "FRONTMERGE_LAYOUT",
    ),
    (
        "sched_process_exec",
        Hook::Btf("sched", "sched_process_exec"),
        "TASK_LAYOUT",
    ),
    (
        "sched_process_fork",
        Hook::Btf("sched", "sched_process_fork"),
        "TASK_LAYOUT",
    ),
    (
        "sched_process_exit",
        Hook::Btf("sched", "sched_process_exit"),
        "TASK_LAYOUT",
    ),
    (
        "netif_receive_skb",
        Hook::Btf("net", "netif_receive_skb"),
        "NET_LAYOUT",
    ),
    (
        "net_dev_xmit",
        Hook::Btf("net", "net_dev_xmit"),
        "NET_LAYOUT",
    ),
    ("kfree_skb", Hook::Btf("skb", "kfree_skb"), "NET_LAYOUT"),
    (
        "count_receive",
        Hook::Btf("net", "netif_receive_skb"),
        "NET_LAYOUT",
    ),
    (
        "count_transmit",
        Hook::Btf("net", "net_dev_xmit"),
        "NET_LAYOUT",
    ),
    (
        "tcp_retransmit_skb",
        Hook::Btf("tcp", "tcp_retransmit_skb"),
        "NET_LAYOUT",
    ),
    (
        "tcp_retransmit_synack",
        Hook::Btf("tcp", "tcp_retransmit_synack"),
        "NET_LAYOUT",
    ),
    (
        "inet_sock_set_state",
        Hook::Btf("sock", "inet_sock_set_state"),
        "NET_LAYOUT",
    ),
    (
        "tcp_send_reset",
        Hook::Btf("tcp", "tcp_send_reset"),
        "NET_LAYOUT",
    ),
    (
        "tcp_receive_reset",
        Hook::Btf("tcp", "tcp_receive_reset"),
        "NET_LAYOUT",
    ),
];

/// The events of the BTF tracepoint programs.
fn btf_events() -> Vec<&'static str> {
    PROGRAMS
        .iter()
        .filter_map(|(_, hook, _)| match hook {
            Hook::Btf(_, event) => Some(*event),
            Hook::Classic(..) => None,
        })
        .collect()
}

/// The names of the object's programs that the agent attaches.
pub(super) fn program_names() -> Vec<&'static str> {
    PROGRAMS.iter().map(|(name, _, _)| *name).collect()
}

/// The eBPF object's programs and maps. Programs stay attached as long as
/// it lives.
pub struct Kernel {
    objects: Objects,
    attached: Vec<&'static str>,
    logger: Option<KernelLogger>,
    /// Keeps the kernel's BPF run-time statistics on while the agent runs.
    stats: Option<OwnedFd>,
}

/// Where the programs and maps come from.
enum Objects {
    /// Loaded by this process.
    Loaded(Box<Loaded>),
    /// Loaded before blippd re-executed itself (see
    /// [`handover`](super::handover)).
    Inherited(Inherited),
}

/// The object as aya loaded it.
struct Loaded {
    ebpf: aya::Ebpf,
    /// What aya needs of the kernel's BTF to load BTF tracepoints (see
    /// [`attach_btf`](super::attach_btf)); dropped by
    /// [`Kernel::loading_done`].
    btf: Result<aya::Btf, String>,
    /// Why a global could not be filled in on this kernel, by global name.
    missing: HashMap<&'static str, String>,
    /// Every program a probe asked for: its descriptor, or why it could
    /// not be attached. A program that failed is not tried again: it fails
    /// the same way for every probe, here and after a re-execution.
    outcomes: BTreeMap<&'static str, Result<OwnedFd, String>>,
}

/// What the image that loaded the object handed over.
struct Inherited {
    programs: BTreeMap<&'static str, Result<OwnedFd, String>>,
    maps: BTreeMap<String, OwnedFd>,
    /// The attachments: closing them would detach the programs.
    _links: Vec<OwnedFd>,
}

/// What a [`Kernel`] that loaded the object hands over to the next image:
/// descriptors borrowed from it.
pub struct Exports<'a> {
    /// Every program asked for: its descriptor or why it failed.
    pub programs: Vec<(&'static str, Result<BorrowedFd<'a>, &'a str>)>,
    /// Every map of the object the agent can read, by name.
    pub maps: Vec<(&'a str, BorrowedFd<'a>)>,
    /// The run-time statistics switch.
    pub stats: Option<BorrowedFd<'a>>,
}

/// Whether probes can have eBPF, and if not, why: the reason ends up in the
/// fallback log line of every probe in `auto` mode.
pub enum KernelAccess {
    /// The object is loaded.
    Loaded(Box<Kernel>),
    /// It could not be loaded.
    Unavailable(String),
}

impl KernelAccess {
    /// Loads the object (see [`Kernel::load`]); a failure is kept as the
    /// reason, not raised, so that `auto` probes can fall back.
    pub fn open(run_time_stats: bool) -> Self {
        match Kernel::load(run_time_stats) {
            Ok(k) => KernelAccess::Loaded(Box::new(k)),
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

/// The programs' globals as read from this kernel: each is its value or
/// why it could not be read.
struct Globals {
    request: Result<RequestLayout, String>,
    task: Result<TaskLayout, String>,
    net: Result<NetLayout, String>,
    bio: [Result<BioLayout, String>; 3],
}

impl Globals {
    fn read(btf: Result<&Btf, &String>, root: Result<&Path, &String>) -> Self {
        let btf = btf.map_err(Clone::clone);
        let request = btf
            .clone()
            .and_then(|b| disk::request_layout(b).map_err(|e| e.to_string()));
        let task = btf
            .clone()
            .and_then(|b| process::task_layout(b).map_err(|e| e.to_string()));
        let net = btf.and_then(|b| {
            let ns = net::own_netns().map_err(|e| format!("/proc/self/ns/net: {e}"))?;
            net::net_layout(b, ns).map_err(|e| e.to_string())
        });
        let bio = match root {
            Ok(root) => process::bio_layouts(root).map(|r| r.map_err(|e| e.to_string())),
            Err(why) => [(); 3].map(|()| Err(why.clone())),
        };
        Self {
            request,
            task,
            net,
            bio,
        }
    }

    /// Hands the values to the loader and notes why the others are
    /// missing.
    fn apply<'a>(
        &'a self,
        loader: &mut aya::EbpfLoader<'a>,
        missing: &mut HashMap<&'static str, String>,
    ) {
        fn one<'a, T: aya::Pod>(
            name: &'static str,
            value: &'a Result<T, String>,
            loader: &mut aya::EbpfLoader<'a>,
            missing: &mut HashMap<&'static str, String>,
        ) {
            match value {
                Ok(v) => {
                    loader.override_global(name, v, true);
                }
                Err(why) => {
                    missing.insert(name, why.clone());
                }
            }
        }
        one("REQUEST_LAYOUT", &self.request, loader, missing);
        one("TASK_LAYOUT", &self.task, loader, missing);
        one("NET_LAYOUT", &self.net, loader, missing);
        let [getrq, back, front] = &self.bio;
        one("GETRQ_LAYOUT", getrq, loader, missing);
        one("BACKMERGE_LAYOUT", back, loader, missing);
        one("FRONTMERGE_LAYOUT", front, loader, missing);
    }
}

/// The data of the map kinds the agent reads; `None` for the others.
fn readable(map: &aya::maps::Map) -> Option<&aya::maps::MapData> {
    use aya::maps::Map;
    match map {
        Map::Array(d)
        | Map::PerCpuArray(d)
        | Map::HashMap(d)
        | Map::LruHashMap(d)
        | Map::PerCpuHashMap(d)
        | Map::RingBuf(d) => Some(d),
        _ => None,
    }
}

impl Kernel {
    /// Loads the embedded object with globals set from this kernel's BTF
    /// and tracepoint formats. Programs are not loaded (verified) until
    /// the probes of the configuration ask for them ([`Kernel::verify`],
    /// [`Kernel::attach`]). `run_time_stats` turns the kernel's BPF
    /// run-time statistics on for as long as blippd runs: they cost every
    /// BPF program on the host two clock reads per run (on a 2-CPU VM, 8 %
    /// of small-packet throughput with the net programs), so only a
    /// configuration that publishes them asks for them.
    pub fn load(run_time_stats: bool) -> Result<Self, EbpfError> {
        // Made on a thread of its own, while this one reads the kernel's
        // BTF and tracefs (see `loader`).
        let started = std::time::Instant::now();
        let loader = std::thread::spawn(super::loader::without_kernel_btf);
        let root = tracefs::root().map_err(|e| e.to_string());
        let btf = Btf::from_sys_fs().map_err(|e| format!("kernel BTF: {e}"));
        let globals = Globals::read(btf.as_ref(), root.as_deref());
        let attach_btf = btf
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|b| super::attach_btf::for_events(b, &btf_events()));
        drop(btf);
        let btf_read = started.elapsed();
        let mut missing = HashMap::new();
        let mut loader = loader
            .join()
            .unwrap_or_else(|_| super::loader::without_kernel_btf());
        let loader_made = started.elapsed();
        globals.apply(&mut loader, &mut missing);
        let object = super::object::loadable(OBJECT).map_err(|e| EbpfError::Object(Box::new(e)))?;
        let mut ebpf = loader
            .load(&object)
            .map_err(|e| EbpfError::Load(Box::new(e)))?;
        drop(loader);
        drop(object);
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        tracing::debug!(
            btf_ms = ms(btf_read),
            loader_ms = ms(loader_made),
            total_ms = ms(started.elapsed()),
            "eBPF object loaded"
        );
        let logger = match KernelLogger::init_with_logger(&mut ebpf, TracingLog) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::debug!(error = %e, "no kernel-side log records");
                None
            }
        };
        Ok(Self {
            objects: Objects::Loaded(Box::new(Loaded {
                ebpf,
                btf: attach_btf,
                missing,
                outcomes: BTreeMap::new(),
            })),
            attached: Vec::new(),
            logger,
            stats: if run_time_stats { enable_stats() } else { None },
        })
    }

    /// Takes over what the image that loaded the object handed over: its
    /// programs (attached, or why not), maps, attachments and statistics
    /// switch. The kernel-side log is found again through the programs,
    /// which needs `CAP_SYS_ADMIN`: call this before the capabilities are
    /// dropped.
    pub fn inherit(objects: Handover) -> Self {
        let Handover {
            programs,
            maps,
            links,
            stats,
            ..
        } = objects;
        let attached: Vec<&'static str> = programs
            .iter()
            .filter(|(_, p)| p.is_ok())
            .map(|(name, _)| *name)
            .collect();
        let failed: Vec<&'static str> = programs
            .iter()
            .filter(|(_, p)| p.is_err())
            .map(|(name, _)| *name)
            .collect();
        let logger = klog::find(programs.values().filter_map(|p| p.as_ref().ok()));
        tracing::info!(
            attached = ?attached,
            failed = ?failed,
            maps = maps.len(),
            links = links.len(),
            stats = stats.is_some(),
            kernel_log = logger.is_some(),
            "eBPF programs and maps inherited from the image that loaded them"
        );
        Self {
            objects: Objects::Inherited(Inherited {
                programs,
                maps,
                _links: links,
            }),
            attached,
            logger,
            stats,
        }
    }

    /// Verifies `programs` in parallel ahead of [`Kernel::attach`], which
    /// then only attaches them: the kernel's verifier is most of
    /// attaching (on 6.18 it searches the kernel's BTF by name, type by
    /// type, for every pointer a program loads from its arguments).
    /// Programs inherited from the loading image need nothing.
    pub fn verify(&mut self, programs: &[&'static str]) {
        if let Objects::Loaded(loaded) = &mut self.objects {
            loaded.verify(programs);
        }
    }

    /// Verifies and attaches `program` where [`PROGRAMS`] says, once;
    /// returns a handle for its statistics.
    pub fn attach(&mut self, program: &'static str) -> Result<ProgramHandle, EbpfError> {
        let outcome = match &mut self.objects {
            Objects::Loaded(loaded) => {
                if !loaded.outcomes.contains_key(program) {
                    let attached = loaded
                        .attach(program)
                        .and_then(|fd| fd.try_clone_to_owned().map_err(io_err(program)));
                    loaded
                        .outcomes
                        .insert(program, attached.map_err(|e| e.to_string()));
                }
                loaded.outcomes.get(program)
            }
            Objects::Inherited(inherited) => inherited.programs.get(program),
        };
        let fd = match outcome {
            Some(Ok(fd)) => fd.try_clone().map_err(io_err(program))?,
            Some(Err(why)) => return Err(EbpfError::Failed(why.clone())),
            None => return Err(EbpfError::NotInherited(program)),
        };
        if !self.attached.contains(&program) {
            self.attached.push(program);
        }
        Ok(ProgramHandle::new(program, fd))
    }

    /// Frees what only loading needed (the BTF aya attaches with, an entry
    /// per kernel type id); BTF programs attached later fail with a reason.
    pub fn loading_done(&mut self) {
        if let Objects::Loaded(loaded) = &mut self.objects {
            loaded.btf =
                Err("programs can no longer be loaded: loading finished at start-up".to_owned());
        }
    }

    /// The names of the programs attached so far.
    pub fn attached(&self) -> &[&'static str] {
        &self.attached
    }

    /// Whether the kernel keeps per-program run-time statistics for us.
    pub fn stats_enabled(&self) -> bool {
        self.stats.is_some()
    }

    /// The forwarder of the programs' log records, once.
    pub fn take_logger(&mut self) -> Option<KernelLogger> {
        self.logger.take()
    }

    /// Whether a map can be read now (a lookup in one the object keeps):
    /// the test of [`drop_loading_capabilities`](super::caps::drop_loading_capabilities).
    pub fn maps_readable(&self) -> bool {
        let Ok(map) = self.map("LOST_LOGGED") else {
            return false;
        };
        aya::maps::Array::<_, u32>::try_from(map).is_ok_and(|a| a.get(&0, 0).is_ok())
    }

    /// A handle on map `name` for the probe that reads it: the probe's own
    /// descriptor of the map, which the object keeps for as long as the
    /// agent runs. A probe restarted later (a configuration changed in
    /// UNIS or through the control socket) gets the same map again — with
    /// the counters the programs kept adding to meanwhile — although the
    /// capabilities that loading needed are gone by then: duplicating a
    /// descriptor needs none, and asking the kernel what the map is
    /// (`BPF_OBJ_GET_INFO_BY_FD`) only what reading it needs.
    pub fn map(&self, name: &'static str) -> Result<aya::maps::Map, EbpfError> {
        use aya::maps::{Map, MapData};
        let fd = match &self.objects {
            Objects::Loaded(loaded) => {
                let map = loaded.ebpf.map(name).ok_or(EbpfError::MissingMap(name))?;
                readable(map)
                    .ok_or(EbpfError::MapKind(name))?
                    .fd()
                    .as_fd()
                    .try_clone_to_owned()
            }
            Objects::Inherited(inherited) => inherited
                .maps
                .get(name)
                .ok_or(EbpfError::MissingMap(name))?
                .try_clone(),
        }
        .map_err(|source| EbpfError::Dup { map: name, source })?;
        let map_err = |e| EbpfError::Map {
            map: name,
            source: Box::new(e),
        };
        let map = Map::from_map_data(MapData::from_fd(fd).map_err(map_err)?).map_err(map_err)?;
        readable(&map).ok_or(EbpfError::MapKind(name))?;
        Ok(map)
    }

    /// The descriptors a re-executed image needs to carry on where this
    /// one stops; `None` when this kernel inherited them itself (an image
    /// that did not load the object never re-executes).
    pub fn exports(&self) -> Option<Exports<'_>> {
        let Objects::Loaded(loaded) = &self.objects else {
            return None;
        };
        let programs = loaded
            .outcomes
            .iter()
            .map(|(name, o)| (*name, o.as_ref().map(AsFd::as_fd).map_err(String::as_str)))
            .collect();
        let mut maps: Vec<(&str, BorrowedFd<'_>)> = loaded
            .ebpf
            .maps()
            .filter_map(|(name, map)| Some((name, readable(map)?.fd().as_fd())))
            .collect();
        if let Some(logger) = &self.logger {
            maps.push((klog::MAP, logger.as_fd()));
        }
        Some(Exports {
            programs,
            maps,
            stats: self.stats.as_ref().map(AsFd::as_fd),
        })
    }
}

/// Turns the kernel's BPF run-time statistics on for as long as the
/// returned descriptor is open.
fn enable_stats() -> Option<OwnedFd> {
    match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::info!(error = %e, "BPF run-time statistics unavailable: per-program cost samples will not be published");
            None
        }
    }
}

fn io_err(program: &'static str) -> impl Fn(std::io::Error) -> EbpfError {
    move |e| EbpfError::Program {
        program,
        source: Box::new(aya::programs::ProgramError::IOError(e)),
    }
}

/// Where `program` attaches and which of the object's programs is loaded
/// for it (another one only under fault injection).
fn resolve(program: &'static str) -> Result<(Hook, &'static str, &'static str), EbpfError> {
    let (hook, global) = PROGRAMS
        .iter()
        .find(|(name, _, _)| *name == program)
        .map(|(_, hook, global)| (*hook, *global))
        .ok_or(EbpfError::MissingProgram(program))?;
    let object_program = fault::substitute(program);
    let hook = match hook {
        Hook::Btf(category, event) if object_program != program => Hook::Classic(category, event),
        other => other,
    };
    Ok((hook, object_program, global))
}

/// Loads (verifies) `prog` for `hook` unless it is loaded already.
fn load(
    prog: &mut aya::programs::Program,
    hook: Hook,
    btf: Result<&aya::Btf, &String>,
) -> Result<(), aya::programs::ProgramError> {
    match hook {
        Hook::Btf(_, event) => {
            let p: &mut BtfTracePoint = prog.try_into()?;
            if p.fd().is_err() {
                let btf = btf.map_err(|why| {
                    aya::programs::ProgramError::IOError(std::io::Error::other(why.clone()))
                })?;
                p.load(event, btf)?;
            }
        }
        Hook::Classic(..) => {
            let p: &mut TracePoint = prog.try_into()?;
            if p.fd().is_err() {
                p.load()?;
            }
        }
    }
    Ok(())
}

impl Loaded {
    /// Why `program` cannot be loaded on this kernel, if a global it needs
    /// could not be filled in.
    fn unusable(&self, program: &'static str, global: &str) -> Result<(), EbpfError> {
        match self.missing.get(global) {
            Some(why) => Err(EbpfError::Unusable {
                program,
                reason: why.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Verifies and attaches `program` where [`PROGRAMS`] says; returns
    /// its descriptor.
    fn attach(&mut self, program: &'static str) -> Result<BorrowedFd<'_>, EbpfError> {
        let (hook, object_program, global) = resolve(program)?;
        self.unusable(program, global)?;
        let perr = |e: aya::programs::ProgramError| EbpfError::Program {
            program,
            source: Box::new(e),
        };
        let prog = self
            .ebpf
            .program_mut(object_program)
            .ok_or(EbpfError::MissingProgram(program))?;
        load(prog, hook, self.btf.as_ref()).map_err(perr)?;
        match hook {
            Hook::Btf(..) => {
                let p: &mut BtfTracePoint = prog.try_into().map_err(perr)?;
                p.attach().map_err(perr)?;
                Ok(p.fd().map_err(perr)?.as_fd())
            }
            Hook::Classic(category, name) => {
                let p: &mut TracePoint = prog.try_into().map_err(perr)?;
                p.attach(category, name).map_err(perr)?;
                Ok(p.fd().map_err(perr)?.as_fd())
            }
        }
    }

    /// Loads `programs` (the verifier's work, most of attaching them) on
    /// up to one thread per CPU; a program that fails has its outcome
    /// recorded, as [`Loaded::attach`] would.
    fn verify(&mut self, programs: &[&'static str]) {
        let mut jobs: Vec<(&'static str, Hook, &'static str)> = Vec::new();
        for &program in programs {
            if self.outcomes.contains_key(program) || jobs.iter().any(|(p, ..)| *p == program) {
                continue;
            }
            // What cannot be resolved or filled in fails in `attach`.
            if let Ok((hook, object_program, global)) = resolve(program)
                && self.unusable(program, global).is_ok()
            {
                jobs.push((program, hook, object_program));
            }
        }
        let btf = self.btf.as_ref();
        let mut work: Vec<(&'static str, Hook, &mut aya::programs::Program)> = self
            .ebpf
            .programs_mut()
            .filter_map(|(name, prog)| {
                let (program, hook, _) = jobs.iter().find(|(_, _, o)| *o == name)?;
                Some((*program, *hook, prog))
            })
            .collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(4);
        let per_thread = work.len().div_ceil(threads).max(1);
        let failed: Vec<(&'static str, String)> = std::thread::scope(|s| {
            let handles: Vec<_> = work
                .chunks_mut(per_thread)
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter_mut()
                            .filter_map(|(program, hook, prog)| {
                                let e = load(prog, *hook, btf).err()?;
                                let e = EbpfError::Program {
                                    program,
                                    source: Box::new(e),
                                };
                                Some((*program, e.to_string()))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for (program, why) in failed {
            self.outcomes.insert(program, Err(why));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What the registry says a probe attaches is what the object has, and
    /// only probes with an eBPF variant say anything.
    #[test]
    fn the_registrys_programs_are_the_objects() {
        let known = program_names();
        for spec in crate::probe::REGISTRY {
            let programs: Vec<&str> = spec
                .programs
                .iter()
                .flat_map(|g| g.iter().copied())
                .collect();
            assert_eq!(
                spec.fallback.has_ebpf(),
                !programs.is_empty(),
                "{}: {programs:?}",
                spec.module
            );
            for p in programs {
                assert!(
                    known.contains(&p),
                    "{}: {p} is not in the object",
                    spec.module
                );
            }
        }
    }
}
