//! Process life and the processes that do the most disk I/O.
//!
//! From eBPF: each exec, fork and exit as it happens (ring buffer), with
//! pid, parent, command, exit code or signal and lifetime, and the block
//! I/O the process submitted over its life; host-wide counts of each; and,
//! per collection, the `top` processes by bytes submitted to request-based
//! disks in the interval. Without eBPF: /proc/stat's count of tasks
//! created since boot (the kernel keeps no exit codes for the departed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use blipp_common::process::{ProcCount, ProcEvent, ProcEventKind, ProcIo};
use serde::Deserialize;

use super::{BuildContext, Built, Fallback, Probe, ProbeError, ProbeSpec, Reach, choose};
use crate::config::ProbeConfig;
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::ebpf::process::{
    EventQueue, EventReader, ExitHow, ProcessEvents, ProcessIo, SharedReader, comm_str,
};
use crate::source::procfs::stat::{self, Stat};
use crate::source::read::KernelFile;

/// Registry row.
pub const SPEC: ProbeSpec = ProbeSpec {
    module: "procevents",
    summary: "process exec, fork and exit events (pid, parent, command, exit code, lifetime, lifetime disk I/O) and the top processes by disk I/O (eBPF sched and block tracepoints; /proc/stat tasks created)",
    fallback: Fallback::Proc,
    programs: &[
        &crate::source::ebpf::process::EVENT_PROGRAMS,
        &crate::source::ebpf::process::IO_PROGRAMS,
    ],
    reach: Reach::NONE,
    build,
    options: crate::config::option_keys::<Options>,
};

const PREFIX: &str = "ps:tools:blipp:linux:process:";

fn event_type(suffix: &str) -> Name {
    Name::from(format!("{PREFIX}{suffix}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Processes reported per collection by disk I/O (0: none).
    top: Option<usize>,
    /// Report each exec, fork and exit (default true); the counts are
    /// reported either way.
    events: Option<bool>,
    /// Events reported per collection at most; the rest are counted as
    /// dropped (default 1000).
    max_events: Option<usize>,
}

fn build(config: &ProbeConfig, ctx: &mut BuildContext<'_>) -> Result<Built, ProbeError> {
    let options: Options = config.options()?;
    choose(
        config,
        ctx,
        |ctx| ebpf(&options, ctx),
        |_| {
            Ok(Box::new(ProcVariant {
                file: KernelFile::new(&config.proc_dir, "stat"),
                stat: Stat::default(),
                node: Name::from("node"),
                clones: event_type("events:clone"),
            }) as Box<dyn Probe>)
        },
    )
}

/// Event types of the eBPF variant.
struct Types {
    counts: [Name; 4],
    dropped: Name,
    exec: Name,
    fork: Name,
    exit_code: Name,
    exit_signal: Name,
    lifetime: Name,
    io_read: Name,
    io_write: Name,
    top_read: Name,
    top_write: Name,
}

struct EbpfVariant {
    events: ProcessEvents,
    io: ProcessIo,
    /// Filled as events arrive, by a task, once the probe first runs
    /// inside the runtime; until then the probe drains the ring itself.
    queue: Option<Arc<Mutex<SharedReader>>>,
    reader: Option<EventReader>,
    local: EventQueue,
    drained: Vec<ProcEvent>,
    show_events: bool,
    max_events: usize,
    top: usize,
    types: Types,
    node: Name,
    subjects: HashMap<(u32, [u8; 16]), Name>,
    /// I/O per pid at the previous collection.
    last_io: HashMap<u32, (u64, u64)>,
    entries: Vec<(u32, ProcIo)>,
    ranked: Vec<(u64, u32, u64, u64, [u8; 16])>,
    last_ts: Option<Timestamp>,
    dropped: u64,
}

fn ebpf(options: &Options, ctx: &mut BuildContext<'_>) -> Result<Box<dyn Probe>, ProbeError> {
    let kernel = ctx.kernel.get().map_err(ProbeError::EbpfUnavailable)?;
    let mut events = ProcessEvents::attach(kernel)?;
    let top = options.top.unwrap_or(10);
    let mut io = ProcessIo::attach(kernel)?;
    let mut programs = std::mem::take(&mut events.programs);
    programs.append(&mut io.programs);
    ctx.costs.add_programs(programs, kernel.stats_enabled());
    let reader = events.take_reader();
    Ok(Box::new(EbpfVariant {
        events,
        io,
        queue: None,
        reader,
        local: EventReader::queue(1 << 16),
        drained: Vec::new(),
        show_events: options.events.unwrap_or(true),
        max_events: options.max_events.unwrap_or(1000),
        top,
        types: Types {
            counts: ["exec", "fork", "exit", "lost"].map(|k| event_type(&format!("events:{k}"))),
            dropped: event_type("events:dropped"),
            exec: event_type("exec:parent"),
            fork: event_type("fork:parent"),
            exit_code: event_type("exit:code"),
            exit_signal: event_type("exit:signal"),
            lifetime: event_type("exit:lifetime"),
            io_read: event_type("exit:disk:bytes:read"),
            io_write: event_type("exit:disk:bytes:write"),
            top_read: event_type("disk:utilization:bytes:read"),
            top_write: event_type("disk:utilization:bytes:write"),
        },
        node: ctx.node.clone(),
        subjects: HashMap::new(),
        last_io: HashMap::new(),
        entries: Vec::new(),
        ranked: Vec::new(),
        last_ts: None,
        dropped: 0,
    }))
}

/// The wall-clock time of a `CLOCK_MONOTONIC` instant, given the two
/// clocks read together now.
fn wall(ts_ns: u64, now_mono: u64, now: Timestamp) -> Timestamp {
    Timestamp(now.0.saturating_sub(now_mono.saturating_sub(ts_ns) / 1000))
}

impl EbpfVariant {
    fn subject(&mut self, pid: u32, comm: &[u8; 16]) -> Name {
        if self.subjects.len() > 65536 {
            self.subjects.clear();
        }
        self.subjects
            .entry((pid, *comm))
            .or_insert_with(|| Name::from(format!("process:{}:{pid}", comm_str(comm))))
            .clone()
    }

    fn take_events(&mut self) {
        if self.queue.is_none()
            && tokio::runtime::Handle::try_current().is_ok()
            && let Some(mut reader) = self.reader.take()
        {
            reader.drain(&mut self.local);
            match reader.spawn(1 << 16) {
                Ok(q) => self.queue = Some(q),
                Err(e) => tracing::warn!(error = %e, "process events read only at collections"),
            }
        }
        if let Some(r) = &mut self.reader {
            r.drain(&mut self.local);
        }
        self.local.drain_into(&mut self.drained);
        self.dropped += std::mem::take(&mut self.local.dropped);
        if let Some(q) = &self.queue {
            let mut q = q.lock().unwrap_or_else(PoisonError::into_inner);
            q.drain();
            q.queue.drain_into(&mut self.drained);
            self.dropped += std::mem::take(&mut q.queue.dropped);
        }
    }

    fn push_events(&mut self, ts: Timestamp, out: &mut Vec<Sample>) {
        let (mono, events) = (
            crate::source::kernel::monotonic_ns(),
            std::mem::take(&mut self.drained),
        );
        let shown = if self.show_events {
            events.len().min(self.max_events)
        } else {
            0
        };
        self.dropped += (events.len() - shown) as u64;
        for e in &events[..shown] {
            let subject = self.subject(e.pid, &e.comm);
            let at = wall(e.ts_ns, mono, ts);
            let t = &self.types;
            let mut push = |et: &Name, v: Value| {
                out.push(Sample::new(at, &subject, et, v, Source::Ebpf));
            };
            match ProcEventKind::from_u32(e.kind) {
                Some(ProcEventKind::Exec) => push(&t.exec, Value::Int(u64::from(e.ppid))),
                Some(ProcEventKind::Fork) => push(&t.fork, Value::Int(u64::from(e.ppid))),
                Some(ProcEventKind::Exit) => {
                    match ExitHow::from_status(e.exit_status) {
                        ExitHow::Code(c) => push(&t.exit_code, Value::Int(u64::from(c))),
                        ExitHow::Signal(s) => push(&t.exit_signal, Value::Int(u64::from(s))),
                    }
                    if e.start_ns > 0 && e.ts_ns >= e.start_ns {
                        push(
                            &t.lifetime,
                            Value::Float((e.ts_ns - e.start_ns) as f64 / 1e9),
                        );
                    }
                    push(&t.io_read, Value::Int(e.io.read_bytes));
                    push(&t.io_write, Value::Int(e.io.write_bytes));
                }
                None => {}
            }
        }
        // Exited processes' final I/O counts in the top ranking below.
        for e in &events {
            if e.kind == ProcEventKind::Exit as u32 && (e.io.read_bytes | e.io.write_bytes) != 0 {
                self.entries.push((e.pid, e.io));
            }
        }
        self.drained = events;
        self.drained.clear();
    }

    fn push_top(&mut self, ts: Timestamp, seconds: Option<f64>, out: &mut Vec<Sample>) {
        self.ranked.clear();
        let mut next = HashMap::with_capacity(self.entries.len());
        for (pid, io) in &self.entries {
            let (r0, w0) = self.last_io.get(pid).copied().unwrap_or_default();
            let (r, w) = (
                io.read_bytes.saturating_sub(r0),
                io.write_bytes.saturating_sub(w0),
            );
            next.insert(*pid, (io.read_bytes, io.write_bytes));
            if r + w > 0 {
                self.ranked.push((r + w, *pid, r, w, io.comm));
            }
        }
        self.last_io = next;
        let Some(secs) = seconds.filter(|s| *s > 0.0) else {
            return;
        };
        self.ranked.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        let ranked = std::mem::take(&mut self.ranked);
        for (_, pid, r, w, comm) in ranked.iter().take(self.top) {
            let subject = self.subject(*pid, comm);
            for (et, v) in [(&self.types.top_read, r), (&self.types.top_write, w)] {
                out.push(Sample::new(
                    ts,
                    &subject,
                    et,
                    Value::Float(*v as f64 / secs),
                    Source::Ebpf,
                ));
            }
        }
        self.ranked = ranked;
    }
}

impl Probe for EbpfVariant {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        self.take_events();
        self.io.read(&mut self.entries)?;
        self.push_events(ts, out);
        let counts = self.events.counts()?;
        for (which, et) in [
            ProcCount::Exec,
            ProcCount::Fork,
            ProcCount::Exit,
            ProcCount::Lost,
        ]
        .iter()
        .zip(&self.types.counts)
        {
            out.push(Sample::new(
                ts,
                &self.node,
                et,
                Value::Int(ProcessEvents::count(&counts, *which)),
                Source::Ebpf,
            ));
        }
        out.push(Sample::new(
            ts,
            &self.node,
            &self.types.dropped,
            Value::Int(self.dropped),
            Source::Ebpf,
        ));
        let seconds = self.last_ts.map(|l| ts.seconds_since(l));
        self.last_ts = Some(ts);
        if self.top > 0 {
            self.push_top(ts, seconds, out);
        }
        Ok(())
    }
}

/// Without eBPF: tasks created since boot.
struct ProcVariant {
    file: KernelFile,
    stat: Stat,
    node: Name,
    clones: Name,
}

impl Probe for ProcVariant {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let stat = &mut self.stat;
        self.file.parse(|text| stat::parse_into(text, stat))?;
        if let Some(n) = self.stat.processes {
            out.push(Sample::new(
                ts,
                &self.node,
                &self.clones,
                Value::Int(n),
                Source::Proc,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_instants_map_to_wall_clock() {
        let now = Timestamp(1_700_000_000_000_000);
        assert_eq!(wall(5_000_000_000, 7_000_000_000, now).0, now.0 - 2_000_000);
        assert_eq!(wall(9_000_000_000, 7_000_000_000, now), now, "never later");
    }
}
