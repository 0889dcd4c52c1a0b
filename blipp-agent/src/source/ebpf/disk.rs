//! User side of the block programs: the completion counters and latency
//! histograms per device, and the layouts the programs need.

use std::path::Path;

use aya::maps::{Array, MapData, PerCpuArray};
use blipp_common::disk::{
    BioLayout, DISK_OPS, DISK_SLOT_CLAIMS, DISK_SLOT_UNCOVERED, DiskCounters, DiskSlot,
    LATENCY_KINDS, LATENCY_OPS, LatencyKind, MAX_DISKS, NO_FIELD, RequestLayout, counter_index,
    histogram_index,
};
use blipp_common::histogram::{BUCKETS, Buckets};

use super::batch::{BatchReader, possible_cpus};
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
    /// Per operation below `LATENCY_OPS`: whether its request count moved
    /// since the previous read, which then read the histograms again. An
    /// operation that did not move has the same histograms as before (they
    /// are not read, which spares an idle disk 26 KB of copying per read).
    pub moved: [bool; LATENCY_OPS as usize],
}

impl DeviceTotals {
    /// A device with nothing counted yet.
    pub fn empty(dev: u32) -> Self {
        Self {
            dev,
            ops: [DiskCounters::default(); DISK_OPS as usize],
            latency: Box::new([[[0; BUCKETS]; LATENCY_KINDS as usize]; LATENCY_OPS as usize]),
            moved: [false; LATENCY_OPS as usize],
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
    /// Some completion found no slot: some blk-mq devices are not covered
    /// and must be read from /proc.
    pub uncovered: bool,
    /// One slot's counters as the kernel hands them out, one per possible
    /// CPU and operation; reused from read to read.
    per_cpu: Vec<DiskCounters>,
    /// The slot table as last read, and how many of its slots were
    /// claimed then.
    table: [DiskSlot; MAX_DISKS as usize],
    claimed: u32,
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
    /// The slot table read whole in one call, and its claim count and
    /// flag in another.
    slots_batch: BatchReader,
    /// The histograms, a device's 12 at a time.
    latency_batch: BatchReader,
    /// The counters, a device's operations at a time.
    counters_batch: BatchReader,
    /// Possible CPUs: how many values a per-CPU element holds.
    cpus: usize,
    counters: PerCpuArray<MapData, DiskCounters>,
    latency: Array<MapData, Buckets>,
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
        let slots = kernel.map("DISK_SLOTS")?;
        let latency = kernel.map("DISK_LATENCY")?;
        let counters = kernel.map("DISK_COUNTERS")?;
        let cpus = possible_cpus()?;
        Ok(Self {
            programs: vec![program],
            slots_batch: BatchReader::of("DISK_SLOTS", &slots),
            latency_batch: BatchReader::of("DISK_LATENCY", &latency),
            counters_batch: BatchReader::of("DISK_COUNTERS", &counters),
            slots: Array::try_from(slots).map_err(map_err("DISK_SLOTS"))?,
            cpus,
            counters: PerCpuArray::try_from(counters).map_err(map_err("DISK_COUNTERS"))?,
            latency: Array::try_from(latency).map_err(map_err("DISK_LATENCY"))?,
        })
    }

    /// Entries `start..start + out.len()` of the slot table: one lookup
    /// (one per entry where the kernel has no batches).
    fn slot_entries(&self, start: u32, out: &mut [DiskSlot]) -> Result<(), EbpfError> {
        let mut keys = [0; MAX_DISKS as usize];
        let keys = &mut keys[..out.len()];
        if !self.slots_batch.read(start, keys, out) {
            for (key, value) in (start..).zip(out.iter_mut()) {
                *value = self.slots.get(&key, 0).map_err(map_err("DISK_SLOTS"))?;
            }
        }
        Ok(())
    }

    /// Brings `out.table` up to date: read again only when the program
    /// counted more claims than the table last read showed. Counting that
    /// way, a claim whose slot is not yet visible, or two CPUs claiming one
    /// slot at once (counted twice), cost a read at every collection
    /// rather than a device missed.
    fn refresh_table(&self, out: &mut DiskSnapshot) -> Result<(), EbpfError> {
        let mut state = [0; 2];
        self.slot_entries(DISK_SLOT_CLAIMS, &mut state)?;
        debug_assert_eq!(DISK_SLOT_UNCOVERED, DISK_SLOT_CLAIMS + 1);
        let [claims, uncovered] = state;
        out.uncovered = uncovered != 0;
        if claims > out.claimed {
            self.slot_entries(0, &mut out.table)?;
            out.claimed = out.table.iter().filter(|dev| **dev != 0).count() as u32;
        }
        Ok(())
    }

    /// Reads the histograms of `slot`, which lie next to each other in
    /// `(op, kind)` order as in `out`.
    fn read_histograms(
        &self,
        slot: u32,
        out: &mut [[Buckets; LATENCY_KINDS as usize]; LATENCY_OPS as usize],
    ) -> Result<(), EbpfError> {
        let start = histogram_index(slot, 0, LatencyKind::ALL[0]);
        let mut keys = [0; (LATENCY_OPS * LATENCY_KINDS) as usize];
        let flat = out.as_flattened_mut();
        if self.latency_batch.read(start, &mut keys, flat) {
            return Ok(());
        }
        for (op, kinds) in out.iter_mut().enumerate() {
            for (kind, h) in LatencyKind::ALL.iter().zip(kinds.iter_mut()) {
                let index = histogram_index(slot, op as u32, *kind);
                *h = self
                    .latency
                    .get(&index, 0)
                    .map_err(map_err("DISK_LATENCY"))?;
            }
        }
        Ok(())
    }

    /// The totals of `slot` per operation, summed over CPUs; `per_cpu` is
    /// scratch room.
    fn counters_of(
        &self,
        slot: u32,
        per_cpu: &mut Vec<DiskCounters>,
    ) -> Result<[DiskCounters; DISK_OPS as usize], EbpfError> {
        let start = counter_index(slot, blipp_common::disk::DiskOp::ALL[0]);
        per_cpu.resize(DISK_OPS as usize * self.cpus, DiskCounters::default());
        let mut keys = [0; DISK_OPS as usize];
        let sum = |values: &[DiskCounters]| {
            values
                .iter()
                .fold(DiskCounters::default(), |a, c| DiskCounters {
                    requests: a.requests.wrapping_add(c.requests),
                    bytes: a.bytes.wrapping_add(c.bytes),
                })
        };
        let mut totals = [DiskCounters::default(); DISK_OPS as usize];
        if self
            .counters_batch
            .read_percpu(start, &mut keys, self.cpus, per_cpu)
        {
            for (total, values) in totals.iter_mut().zip(per_cpu.chunks(self.cpus)) {
                *total = sum(values);
            }
            return Ok(totals);
        }
        for (op, total) in totals.iter_mut().enumerate() {
            let index = counter_index(slot, blipp_common::disk::DiskOp::ALL[op]);
            let values = self
                .counters
                .get(&index, 0)
                .map_err(map_err("DISK_COUNTERS"))?;
            *total = sum(&values);
        }
        Ok(totals)
    }

    /// Reads every claimed slot into `out`, reusing its allocations: one
    /// lookup for the claim count and flag (and the slot table when the
    /// count moved), and per claimed slot one for its counters and, when
    /// an operation's request count moved, one for its histograms
    /// (per-element lookups where the kernel has no batches).
    ///
    /// A completion the program has counted but not yet put into its
    /// histogram when they are read shows in the histograms at the next
    /// read that finds the count moved.
    pub fn read(&self, out: &mut DiskSnapshot) -> Result<(), EbpfError> {
        self.refresh_table(out)?;
        let mut used = 0;
        for (slot, dev) in (0..).zip(out.table) {
            if dev == 0 {
                continue;
            }
            if used == out.devices.len() {
                out.devices.push(DeviceTotals::empty(dev));
            }
            let d = &mut out.devices[used];
            used += 1;
            // Slots are never released, so a position keeps its device;
            // start over should that ever change.
            if d.dev != dev {
                *d = DeviceTotals::empty(dev);
            }
            let ops = self.counters_of(slot, &mut out.per_cpu)?;
            for (moved, (now, before)) in d.moved.iter_mut().zip(ops.iter().zip(&d.ops)) {
                *moved = now.requests != before.requests;
            }
            d.ops = ops;
            if d.moved.contains(&true) {
                self.read_histograms(slot, &mut d.latency)?;
            }
        }
        out.devices.truncate(used);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot's histograms are read in one batch into
    /// `DeviceTotals::latency` flattened: that holds only while the map's
    /// index runs through `(op, kind)` in the array's own order.
    #[test]
    fn a_slots_histograms_lie_in_the_order_of_the_snapshot() {
        for slot in [0, 1, MAX_DISKS - 1] {
            let start = histogram_index(slot, 0, LatencyKind::ALL[0]);
            let mut position = 0;
            for op in 0..LATENCY_OPS {
                for kind in LatencyKind::ALL {
                    assert_eq!(histogram_index(slot, op, kind), start + position);
                    position += 1;
                }
            }
        }
    }
}
