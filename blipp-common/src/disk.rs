//! Block-layer request counters.

/// Operation classes, used as the index into per-operation counter arrays.
///
/// The kernel's `rwbs` string (see `blk_fill_rwbs`) names the operation with
/// one letter after an optional leading `F` (preflush) marker.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskOp {
    /// `R`: read.
    Read = 0,
    /// `W`: write.
    Write = 1,
    /// `D`: discard.
    Discard = 2,
    /// `REQ_OP_FLUSH`: `F` alone, or `FF` with a preflush.
    Flush = 3,
    /// Anything else (`N`, `E` secure erase, zone commands...).
    Other = 4,
}

/// Number of [`DiskOp`] slots in a per-operation array.
pub const DISK_OPS: u32 = 5;

impl DiskOp {
    /// Every operation, in index order.
    pub const ALL: [DiskOp; DISK_OPS as usize] = [
        DiskOp::Read,
        DiskOp::Write,
        DiskOp::Discard,
        DiskOp::Flush,
        DiskOp::Other,
    ];

    /// Classifies a request from its `rwbs` bytes as printed by the block
    /// tracepoints (`"R"`, `"WS"`, `"FWFS"`, `"F"`, `"D"`...).
    ///
    /// A flush that carries data (`FW...`) is counted as a write: its bytes
    /// are write bytes; only a data-less flush is a flush.
    #[inline(always)]
    pub fn from_rwbs(rwbs: &[u8]) -> DiskOp {
        // A leading `F` is REQ_PREFLUSH; the operation letter follows. A
        // second `F` (or nothing) there is REQ_OP_FLUSH itself.
        let byte = |i: usize| match rwbs.get(i) {
            Some(0) | None => None,
            Some(b) => Some(*b),
        };
        let (op, preflush) = match byte(0) {
            Some(b'F') => (byte(1), true),
            other => (other, false),
        };
        match op {
            Some(b'R') => DiskOp::Read,
            Some(b'W') => DiskOp::Write,
            Some(b'D') => DiskOp::Discard,
            Some(b'F') | None if preflush => DiskOp::Flush,
            _ => DiskOp::Other,
        }
    }

    /// Classifies a request by its `REQ_OP_*` number (`cmd_flags &
    /// REQ_OP_MASK`, the same numbers from 5.10 to 6.18): write zeroes counts
    /// as a write and secure erase as a discard, as /proc/diskstats does;
    /// driver passthrough and zone management are `Other`.
    #[inline(always)]
    pub fn from_req_op(op: u32) -> DiskOp {
        match op {
            0 => DiskOp::Read,
            1 | 9 => DiskOp::Write,
            2 => DiskOp::Flush,
            3 | 5 => DiskOp::Discard,
            _ => DiskOp::Other,
        }
    }

    /// Name used in event types (`...:disk:<name>:...`).
    pub fn name(self) -> &'static str {
        match self {
            DiskOp::Read => "read",
            DiskOp::Write => "write",
            DiskOp::Discard => "discard",
            DiskOp::Flush => "flush",
            DiskOp::Other => "other",
        }
    }
}

/// Mask of the operation number in `struct request`'s `cmd_flags`.
pub const REQ_OP_MASK: u32 = 0xff;

/// Completed requests and bytes of one device and operation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskCounters {
    /// Requests completed (a partial completion counts when the request's
    /// last byte completes).
    pub requests: u64,
    /// Bytes completed.
    pub bytes: u64,
}

#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` integers, no padding, any bit pattern is valid.
unsafe impl aya::Pod for DiskCounters {}

/// Devices the completion program keeps apart (a power of two). Each gets
/// a slot the first time one of its requests completes; devices beyond the
/// table raise [`DISK_SLOT_UNCOVERED`] and are left to /proc.
pub const MAX_DISKS: u32 = 32;

/// The slot-table entry after the slots that counts the slots claimed:
/// the agent reads the table again only when it moved, instead of every
/// collection (a batch read of the 32 slots cost it 33 µs, the dearest of
/// its map reads).
pub const DISK_SLOT_CLAIMS: u32 = MAX_DISKS;

/// The slot-table entry set to 1, and left so, once a completion found no
/// slot: some blk-mq disks are then not covered.
pub const DISK_SLOT_UNCOVERED: u32 = MAX_DISKS + 1;

/// Entries of the slot table: the slots, then the claims and the flag.
pub const DISK_SLOT_ENTRIES: u32 = MAX_DISKS + 2;

/// Slots probed for a device before giving up (open addressing).
pub const DISK_SLOT_PROBES: u32 = 8;

/// Operations that get latency histograms: read, write, discard, flush.
pub const LATENCY_OPS: u32 = 4;

/// Which interval a latency histogram measures.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencyKind {
    /// From the request's creation to its completion (always recorded).
    Total = 0,
    /// From creation to issue to the driver, when the kernel timestamps
    /// the issue (`io_start_time_ns`, set while block stats are enabled,
    /// e.g. by writeback throttling).
    Queue = 1,
    /// From issue to completion, under the same condition.
    Device = 2,
}

/// Number of [`LatencyKind`]s.
pub const LATENCY_KINDS: u32 = 3;

impl LatencyKind {
    /// Every kind, in index order.
    pub const ALL: [LatencyKind; LATENCY_KINDS as usize] =
        [LatencyKind::Total, LatencyKind::Queue, LatencyKind::Device];

    /// Name used in event types.
    pub fn name(self) -> &'static str {
        match self {
            LatencyKind::Total => "total",
            LatencyKind::Queue => "queue",
            LatencyKind::Device => "device",
        }
    }
}

/// Index of the counters of (`slot`, `op`) in the per-CPU counter array.
#[inline(always)]
pub fn counter_index(slot: u32, op: DiskOp) -> u32 {
    slot * DISK_OPS + op as u32
}

/// Index of the histogram of (`slot`, `op`, `kind`) in the histogram
/// array; `op` must be below [`LATENCY_OPS`].
#[inline(always)]
pub fn histogram_index(slot: u32, op: u32, kind: LatencyKind) -> u32 {
    (slot * LATENCY_OPS + op) * LATENCY_KINDS + kind as u32
}

/// Slot-table entries: the device number (`major << 20 | minor`, the
/// kernel's internal `dev_t`) that owns the slot, 0 when free.
pub type DiskSlot = u32;

/// The home slot of device `dev` in the slot table.
#[inline(always)]
pub fn home_slot(dev: u32) -> u32 {
    // Fibonacci hashing: loop devices and partitions of one major differ in
    // the low bits, which this spreads over the table.
    dev.wrapping_mul(0x9e37_79b1) >> (32 - MAX_DISKS.trailing_zeros())
}

/// The kernel's internal device number of (`major`, `minor`), as
/// `block_rq_*` tracepoints print it.
#[inline(always)]
pub fn make_dev(major: u32, minor: u32) -> u32 {
    (major << 20) | (minor & 0xf_ffff)
}

/// Marks an offset the running kernel does not have.
pub const NO_FIELD: u32 = u32::MAX;

/// Byte offsets inside the kernel structs the completion program reads,
/// found by the agent in the kernel's BTF (they differ between kernels:
/// 5.10 has `request.rq_disk`, 5.16+ reaches the disk through the queue).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLayout {
    /// `struct request`: `q` (pointer).
    pub q: u32,
    /// `cmd_flags` (u32).
    pub cmd_flags: u32,
    /// `__data_len` (u32): bytes not yet completed.
    pub data_len: u32,
    /// `start_time_ns` (u64).
    pub start_time_ns: u32,
    /// `io_start_time_ns` (u64).
    pub io_start_time_ns: u32,
    /// `rq_disk` (pointer), or [`NO_FIELD`] on kernels without it.
    pub rq_disk: u32,
    /// `struct request_queue`: `disk` (pointer), or [`NO_FIELD`].
    pub q_disk: u32,
    /// `struct gendisk`: `major` (int).
    pub disk_major: u32,
    /// `first_minor` (int).
    pub disk_first_minor: u32,
    /// Non-zero once the agent filled the layout in.
    pub valid: u32,
}

impl RequestLayout {
    /// The layout before the agent fills it in: the program does nothing.
    pub const UNSET: RequestLayout = RequestLayout {
        q: 0,
        cmd_flags: 0,
        data_len: 0,
        start_time_ns: 0,
        io_start_time_ns: 0,
        rq_disk: NO_FIELD,
        q_disk: NO_FIELD,
        disk_major: 0,
        disk_first_minor: 0,
        valid: 0,
    };
}

#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` integers, no padding, any bit pattern is valid.
unsafe impl aya::Pod for RequestLayout {}

/// Byte offsets of the fields of a classic `block` bio tracepoint
/// (`block_getrq`, `block_bio_backmerge`, `block_bio_frontmerge`), read by
/// the agent from the tracepoint's `format` file.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BioLayout {
    /// Offset of `dev_t dev` (u32).
    pub dev: u32,
    /// Offset of `unsigned int nr_sector`.
    pub nr_sector: u32,
    /// Offset of `char rwbs[]`.
    pub rwbs: u32,
    /// Non-zero once the agent filled the layout in.
    pub valid: u32,
}

#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` integers, no padding, any bit pattern is valid.
unsafe impl aya::Pod for BioLayout {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn req_op_classification() {
        assert_eq!(DiskOp::from_req_op(0), DiskOp::Read);
        assert_eq!(DiskOp::from_req_op(1), DiskOp::Write);
        assert_eq!(DiskOp::from_req_op(9), DiskOp::Write);
        assert_eq!(DiskOp::from_req_op(2), DiskOp::Flush);
        assert_eq!(DiskOp::from_req_op(3), DiskOp::Discard);
        assert_eq!(DiskOp::from_req_op(34), DiskOp::Other);
    }

    #[test]
    fn slots_and_indices_stay_in_range() {
        for major in [7u32, 8, 253, 259, 4095] {
            for minor in 0..300 {
                assert!(home_slot(make_dev(major, minor)) < MAX_DISKS);
            }
        }
        let last = histogram_index(MAX_DISKS - 1, LATENCY_OPS - 1, LatencyKind::Device);
        assert_eq!(last, MAX_DISKS * LATENCY_OPS * LATENCY_KINDS - 1);
        assert_eq!(
            counter_index(MAX_DISKS - 1, DiskOp::Other),
            MAX_DISKS * DISK_OPS - 1
        );
    }

    #[test]
    fn rwbs_classification() {
        assert_eq!(DiskOp::from_rwbs(b"R"), DiskOp::Read);
        assert_eq!(DiskOp::from_rwbs(b"RA"), DiskOp::Read);
        assert_eq!(DiskOp::from_rwbs(b"WS"), DiskOp::Write);
        assert_eq!(DiskOp::from_rwbs(b"FWFS"), DiskOp::Write);
        assert_eq!(DiskOp::from_rwbs(b"F"), DiskOp::Flush);
        assert_eq!(DiskOp::from_rwbs(b"FF"), DiskOp::Flush);
        assert_eq!(DiskOp::from_rwbs(b"FN"), DiskOp::Other);
        assert_eq!(DiskOp::from_rwbs(b"F\0\0"), DiskOp::Flush);
        assert_eq!(DiskOp::from_rwbs(b"D"), DiskOp::Discard);
        assert_eq!(DiskOp::from_rwbs(b"N"), DiskOp::Other);
        assert_eq!(DiskOp::from_rwbs(b""), DiskOp::Other);
    }
}
