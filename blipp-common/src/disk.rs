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

/// Completed-request totals for one operation class.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskCounters {
    /// Requests completed.
    pub requests: u64,
    /// 512-byte sectors transferred.
    pub sectors: u64,
}

#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` integers, no padding, any bit pattern is valid.
unsafe impl aya::Pod for DiskCounters {}

/// Byte offsets of the fields of `block/block_rq_complete` that the disk
/// program reads. They differ between kernels (the `ioprio` field appeared in
/// 6.x and moved `rwbs`), so the agent reads them from the tracepoint's
/// `format` file and hands them to the program as globals.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RqCompleteLayout {
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
unsafe impl aya::Pod for RqCompleteLayout {}

#[cfg(test)]
mod tests {
    use super::*;

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
