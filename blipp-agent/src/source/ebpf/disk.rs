//! User side of the block programs: the completion counters and latency
//! histograms per device, and the layouts the programs need.

use std::path::Path;

use aya::maps::{Array, MapData, PerCpuArray};
use blipp_common::disk::{
    BioLayout, DISK_OPS, DiskCounters, DiskSlot, LATENCY_KINDS, LATENCY_OPS, LatencyKind,
    MAX_DISKS, NO_FIELD, RequestLayout, counter_index, histogram_index,
};
use blipp_common::histogram::{BUCKETS, Buckets};

use super::btf::{Btf, BtfError};
use super::{EbpfError, Kernel, ProgramHandle, tracefs};

/// The completion program.
pub const COMPLETE_PROGRAM: &str = "block_rq_complete";

/// Reads the offsets of the `struct request` members the completion
/// program loads, from the kernel's BTF.
pub fn request_layout(btf: &Btf) -> Result<RequestLayout, BtfError> {
    let off = |s: &str, m: &str| btf.member(s, &[m]).map(|m| m.offset);
    // 5.10..5.15 point from the request to its disk; later kernels go
    // through the queue.
    let (rq_disk, q_disk) = if btf.has_member("request", "rq_disk") {
        (off("request", "rq_disk")?, NO_FIELD)
    } else {
        (NO_FIELD, off("request_queue", "disk")?)
    };
    Ok(RequestLayout {
        q: off("request", "q")?,
        cmd_flags: off("request", "cmd_flags")?,
        data_len: off("request", "__data_len")?,
        start_time_ns: off("request", "start_time_ns")?,
        io_start_time_ns: off("request", "io_start_time_ns")?,
        rq_disk,
        q_disk,
        disk_major: off("gendisk", "major")?,
        disk_first_minor: off("gendisk", "first_minor")?,
        valid: 1,
    })
}

/// Reads the field offsets of a classic `block` bio tracepoint.
pub fn bio_layout(root: &Path, name: &str) -> Result<BioLayout, EbpfError> {
    let fields = tracefs::format(root, "block", name)?;
    let tp = format!("block/{name}");
    Ok(BioLayout {
        dev: tracefs::field(&fields, &tp, "dev", 4)?.offset,
        nr_sector: tracefs::field(&fields, &tp, "nr_sector", 4)?.offset,
        rwbs: tracefs::field(&fields, &tp, "rwbs", 4)?.offset,
        valid: 1,
    })
}

/// One device's totals since the program was attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceTotals {
    /// The kernel's device number, `major << 20 | minor`.
    pub dev: u32,
    /// Requests and bytes per [`DiskOp`](blipp_common::disk::DiskOp).
    pub ops: [DiskCounters; DISK_OPS as usize],
    /// Latency histograms per operation below `LATENCY_OPS` and
    /// [`LatencyKind`].
    pub latency: Box<[[Buckets; LATENCY_KINDS as usize]; LATENCY_OPS as usize]>,
}

impl DeviceTotals {
    /// A device with nothing counted yet.
    pub fn empty(dev: u32) -> Self {
        Self {
            dev,
            ops: [DiskCounters::default(); DISK_OPS as usize],
            latency: Box::new([[[0; BUCKETS]; LATENCY_KINDS as usize]; LATENCY_OPS as usize]),
        }
    }

    /// The major device number.
    pub fn major(&self) -> u32 {
        self.dev >> 20
    }

    /// The minor device number.
    pub fn minor(&self) -> u32 {
        self.dev & 0xf_ffff
    }

    /// The histogram of `op` (index below `LATENCY_OPS`) and `kind`.
    pub fn histogram(&self, op: usize, kind: LatencyKind) -> &Buckets {
        &self.latency[op][kind as usize]
    }
}

/// What the completion program counted, device by device.
#[derive(Default)]
pub struct DiskSnapshot {
    /// Devices with a slot, in slot order. Reused from read to read.
    pub devices: Vec<DeviceTotals>,
    /// Completions of devices that found no slot: non-zero means some
    /// blk-mq devices are not covered and must be read from /proc.
    pub overflow: u64,
}

impl DiskSnapshot {
    /// The totals of device `dev`, if it has a slot.
    pub fn device(&self, dev: u32) -> Option<&DeviceTotals> {
        self.devices.iter().find(|d| d.dev == dev)
    }
}

/// The maps of the completion program.
pub struct DiskMaps {
    slots: Array<MapData, DiskSlot>,
    counters: PerCpuArray<MapData, DiskCounters>,
    latency: Array<MapData, Buckets>,
    overflow: PerCpuArray<MapData, u64>,
    /// The attached program.
    pub programs: Vec<ProgramHandle>,
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> EbpfError {
    move |e| EbpfError::Map {
        map,
        source: Box::new(e),
    }
}

impl DiskMaps {
    /// Attaches the completion program and takes its maps.
    pub fn attach(kernel: &mut Kernel) -> Result<Self, EbpfError> {
        let program = kernel.attach(COMPLETE_PROGRAM)?;
        Ok(Self {
            programs: vec![program],
            slots: Array::try_from(kernel.map("DISK_SLOTS")?).map_err(map_err("DISK_SLOTS"))?,
            counters: PerCpuArray::try_from(kernel.map("DISK_COUNTERS")?)
                .map_err(map_err("DISK_COUNTERS"))?,
            latency: Array::try_from(kernel.map("DISK_LATENCY")?)
                .map_err(map_err("DISK_LATENCY"))?,
            overflow: PerCpuArray::try_from(kernel.map("DISK_SLOT_OVERFLOW")?)
                .map_err(map_err("DISK_SLOT_OVERFLOW"))?,
        })
    }

    /// Reads every claimed slot into `out`, reusing its allocations.
    /// Costs one lookup per slot, plus, per claimed slot, one per operation
    /// and one per histogram.
    pub fn read(&self, out: &mut DiskSnapshot) -> Result<(), EbpfError> {
        let mut used = 0;
        for slot in 0..MAX_DISKS {
            let dev = self.slots.get(&slot, 0).map_err(map_err("DISK_SLOTS"))?;
            if dev == 0 {
                continue;
            }
            if used == out.devices.len() {
                out.devices.push(DeviceTotals::empty(dev));
            }
            let d = &mut out.devices[used];
            used += 1;
            d.dev = dev;
            for (op, total) in d.ops.iter_mut().enumerate() {
                let index = counter_index(slot, blipp_common::disk::DiskOp::ALL[op]);
                let per_cpu = self
                    .counters
                    .get(&index, 0)
                    .map_err(map_err("DISK_COUNTERS"))?;
                *total = per_cpu
                    .iter()
                    .fold(DiskCounters::default(), |a, c| DiskCounters {
                        requests: a.requests.wrapping_add(c.requests),
                        bytes: a.bytes.wrapping_add(c.bytes),
                    });
            }
            for (op, kinds) in d.latency.iter_mut().enumerate() {
                for (kind, h) in LatencyKind::ALL.iter().zip(kinds.iter_mut()) {
                    let index = histogram_index(slot, op as u32, *kind);
                    *h = self
                        .latency
                        .get(&index, 0)
                        .map_err(map_err("DISK_LATENCY"))?;
                }
            }
        }
        out.devices.truncate(used);
        out.overflow = self
            .overflow
            .get(&0, 0)
            .map_err(map_err("DISK_SLOT_OVERFLOW"))?
            .iter()
            .sum();
        Ok(())
    }
}
