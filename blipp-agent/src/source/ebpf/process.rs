//! User side of the process programs: exec/fork/exit events from the ring
//! buffer, host-wide event counts, and the block I/O attributed to each
//! process.

use std::collections::VecDeque;
use std::os::fd::AsFd as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use aya::maps::{HashMap, MapData, PerCpuArray, RingBuf};
use blipp_common::disk::BioLayout;
use blipp_common::process::{PROC_COUNTS, ProcCount, ProcEvent, ProcIo, TaskLayout};

use super::btf::{Btf, BtfError};
use super::{EbpfError, Kernel, ProgramHandle, disk};

/// The event programs.
pub const EVENT_PROGRAMS: [&str; 3] = [
    "sched_process_exec",
    "sched_process_fork",
    "sched_process_exit",
];

/// The attribution programs and the tracepoint each reads.
pub const IO_PROGRAMS: [&str; 3] = ["block_getrq", "block_bio_backmerge", "block_bio_frontmerge"];

/// Reads the offsets of the task members the event programs load.
pub fn task_layout(btf: &Btf) -> Result<TaskLayout, BtfError> {
    let task = |m: &str| btf.member("task_struct", &[m]).map(|m| m.offset);
    Ok(TaskLayout {
        pid: task("pid")?,
        tgid: task("tgid")?,
        real_parent: task("real_parent")?,
        group_leader: task("group_leader")?,
        start_time: task("start_time")?,
        exit_code: task("exit_code")?,
        signal: task("signal")?,
        signal_live: btf.member("signal_struct", &["live", "counter"])?.offset,
        comm: task("comm")?,
        valid: 1,
    })
}

/// Reads the layouts of the attribution programs' tracepoints, in
/// [`IO_PROGRAMS`] order.
pub fn bio_layouts(root: &Path) -> [Result<BioLayout, EbpfError>; 3] {
    IO_PROGRAMS.map(|name| disk::bio_layout(root, name))
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> EbpfError {
    move |e| EbpfError::Map {
        map,
        source: Box::new(e),
    }
}

/// Events waiting for the probe, filled by [`EventPump`] as they arrive.
pub struct EventQueue {
    events: VecDeque<ProcEvent>,
    capacity: usize,
    /// Events dropped because the probe did not take them in time.
    pub dropped: u64,
}

impl EventQueue {
    /// Moves every waiting event into `out`.
    pub fn drain_into(&mut self, out: &mut Vec<ProcEvent>) {
        out.extend(self.events.drain(..));
    }

    fn push(&mut self, e: ProcEvent) {
        if self.events.len() >= self.capacity {
            self.dropped += 1;
        } else {
            self.events.push_back(e);
        }
    }
}

/// The ring buffer's reader and the events it took out, shared by the
/// probe and the task that drains the ring when the kernel wakes it.
pub struct SharedReader {
    reader: EventReader,
    /// Events read and not yet taken by the probe.
    pub queue: EventQueue,
}

impl SharedReader {
    /// Moves what the ring buffer holds into the queue.
    pub fn drain(&mut self) {
        self.reader.drain(&mut self.queue);
    }
}

/// Reads the event ring buffer.
pub struct EventReader {
    ring: RingBuf<MapData>,
}

impl std::os::fd::AsRawFd for EventReader {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.ring.as_raw_fd()
    }
}

impl EventReader {
    /// Moves what the ring buffer holds into `queue`; never blocks.
    pub fn drain(&mut self, queue: &mut EventQueue) {
        while let Some(item) = self.ring.next() {
            let bytes: &[u8] = &item;
            if bytes.len() >= size_of::<ProcEvent>() {
                // SAFETY: the kernel wrote a ProcEvent there (plain data,
                // any bit pattern valid); read unaligned from the ring.
                let e = unsafe { bytes.as_ptr().cast::<ProcEvent>().read_unaligned() };
                queue.push(e);
            }
        }
    }

    /// Shares the reader with a task that drains the ring buffer whenever
    /// the kernel wakes it (the programs wake it only once the ring is an
    /// eighth full), until the returned handle is dropped; the probe
    /// drains it at each collection through the handle. Must be called
    /// inside a tokio runtime.
    pub fn spawn(self, capacity: usize) -> std::io::Result<Arc<Mutex<SharedReader>>> {
        // The task polls its own descriptor of the ring: dropping the
        // shared reader then never leaves it with a closed or reused one.
        let own = self.ring.as_fd().try_clone_to_owned()?;
        let shared = Arc::new(Mutex::new(SharedReader {
            reader: self,
            queue: Self::queue(capacity),
        }));
        // SAFETY: the AsyncFd owns `own`, which stays open and the same
        // descriptor for as long as it lives.
        let mut fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(own, tokio::io::Interest::READABLE)
        }
        .map_err(std::io::Error::from)?;
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            loop {
                let Ok(mut guard) = fd.readable_mut().await else {
                    return;
                };
                let Some(shared) = weak.upgrade() else { return };
                let Ok(mut s) = shared.lock() else { return };
                s.drain();
                guard.clear_ready();
            }
        });
        Ok(shared)
    }

    /// An empty queue that holds up to `capacity` events, for
    /// [`EventReader::drain`].
    pub fn queue(capacity: usize) -> EventQueue {
        EventQueue {
            events: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            dropped: 0,
        }
    }
}

/// The event programs' maps.
pub struct ProcessEvents {
    reader: Option<EventReader>,
    counters: PerCpuArray<MapData, u64>,
    /// The attached programs.
    pub programs: Vec<ProgramHandle>,
}

impl ProcessEvents {
    /// Attaches the exec, fork and exit programs and takes their maps.
    pub fn attach(kernel: &mut Kernel) -> Result<Self, EbpfError> {
        let mut programs = Vec::new();
        for p in EVENT_PROGRAMS {
            programs.push(kernel.attach(p)?);
        }
        let ring = RingBuf::try_from(kernel.map("PROC_EVENTS")?).map_err(map_err("PROC_EVENTS"))?;
        Ok(Self {
            reader: Some(EventReader { ring }),
            counters: PerCpuArray::try_from(kernel.map("PROC_COUNTERS")?)
                .map_err(map_err("PROC_COUNTERS"))?,
            programs,
        })
    }

    /// The ring buffer's reader, once.
    pub fn take_reader(&mut self) -> Option<EventReader> {
        self.reader.take()
    }

    /// Host-wide counts: exec, fork, exit, lost (see [`ProcCount`]).
    pub fn counts(&self) -> Result<[u64; PROC_COUNTS as usize], EbpfError> {
        let mut out = [0; PROC_COUNTS as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = self
                .counters
                .get(&(i as u32), 0)
                .map_err(map_err("PROC_COUNTERS"))?
                .iter()
                .sum();
        }
        Ok(out)
    }

    /// One count.
    pub fn count(counts: &[u64; PROC_COUNTS as usize], which: ProcCount) -> u64 {
        counts[which as usize]
    }
}

/// The per-process block I/O map and its programs.
pub struct ProcessIo {
    io: HashMap<MapData, u32, ProcIo>,
    /// The attached programs.
    pub programs: Vec<ProgramHandle>,
}

impl ProcessIo {
    /// Attaches the attribution programs and takes the per-process map.
    pub fn attach(kernel: &mut Kernel) -> Result<Self, EbpfError> {
        let mut programs = Vec::new();
        for p in IO_PROGRAMS {
            programs.push(kernel.attach(p)?);
        }
        Ok(Self {
            io: HashMap::try_from(kernel.map("PROC_IO")?).map_err(map_err("PROC_IO"))?,
            programs,
        })
    }

    /// Every live process with I/O, into `out` (cleared first). Costs two
    /// syscalls per entry, once per collection.
    pub fn read(&self, out: &mut Vec<(u32, ProcIo)>) -> Result<(), EbpfError> {
        out.clear();
        for entry in self.io.iter() {
            match entry {
                Ok(kv) => out.push(kv),
                // An entry removed (process exited) between listing and
                // reading it.
                Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(map_err("PROC_IO")(e)),
            }
        }
        Ok(())
    }

    /// The I/O of one process, if it did any.
    pub fn get(&self, pid: u32) -> Option<ProcIo> {
        self.io.get(&pid, 0).ok()
    }
}

/// The command name in a `comm` buffer.
pub fn comm_str(comm: &[u8; 16]) -> &str {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    std::str::from_utf8(&comm[..end]).unwrap_or("?")
}

/// How a process ended, from its wait status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitHow {
    /// `exit(code)`.
    Code(u8),
    /// Killed by this signal.
    Signal(u8),
}

impl ExitHow {
    /// Decodes a wait status as `waitpid` would.
    pub fn from_status(status: u32) -> Self {
        let signal = (status & 0x7f) as u8;
        if signal == 0 {
            ExitHow::Code(((status >> 8) & 0xff) as u8)
        } else {
            ExitHow::Signal(signal)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_decoding() {
        assert_eq!(ExitHow::from_status(3 << 8), ExitHow::Code(3));
        assert_eq!(ExitHow::from_status(0), ExitHow::Code(0));
        assert_eq!(ExitHow::from_status(9), ExitHow::Signal(9));
        assert_eq!(ExitHow::from_status(0x80 | 11), ExitHow::Signal(11));
    }

    #[test]
    fn comm_stops_at_nul() {
        let mut c = [0u8; 16];
        c[..2].copy_from_slice(b"sh");
        assert_eq!(comm_str(&c), "sh");
        assert_eq!(comm_str(b"0123456789abcdef"), "0123456789abcdef");
    }

    #[test]
    fn queue_drops_beyond_capacity() {
        let mut q = EventReader::queue(2);
        for _ in 0..3 {
            q.push(ProcEvent::default());
        }
        let mut out = Vec::new();
        q.drain_into(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(q.dropped, 1);
    }
}
