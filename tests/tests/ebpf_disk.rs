//! The block-request program, loaded by the agent's library on this host's
//! kernel, counts real I/O done by the test on its own loop device.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use blipp::source::ebpf::KernelAccess;
use blipp::source::ebpf::disk::DiskOpTotals;
use blipp_common::disk::{DISK_OPS, DiskCounters, DiskOp};
use blipp_tests::loopdev::{LoopDevice, diskstats_of};
use blipp_tests::require_root;

fn totals(t: &DiskOpTotals) -> [DiskCounters; DISK_OPS as usize] {
    let mut out = [DiskCounters::default(); DISK_OPS as usize];
    t.read(&mut out).expect("map readable");
    out
}

#[test]
fn direct_io_moves_the_kernel_counts() {
    if !require_root("loading eBPF programs and making loop devices") {
        return;
    }
    let mut access = KernelAccess::open();
    let kernel = access
        .get()
        .expect("the eBPF object loads as root on this kernel");
    let counts = DiskOpTotals::attach(kernel).expect("block_rq_complete attaches");
    let dev = LoopDevice::new(64).expect("loop device");
    let proc = std::path::Path::new("/proc");
    let before_proc = diskstats_of(proc, dev.name()).unwrap();
    let before = totals(&counts);

    dev.write_direct(4096, 1000).unwrap();
    dev.read_direct(4096, 500).unwrap();

    let after = totals(&counts);
    let after_proc = diskstats_of(proc, dev.name()).unwrap();
    let delta = |op: DiskOp| {
        let (a, b) = (after[op as usize], before[op as usize]);
        (a.requests - b.requests, a.sectors - b.sectors)
    };
    let (writes, write_sectors) = delta(DiskOp::Write);
    let (reads, read_sectors) = delta(DiskOp::Read);
    // What /proc says this device did (fields: reads=0, sectors read=2,
    // writes=4, sectors written=6).
    let proc_writes = after_proc[4] - before_proc[4];
    let proc_reads = after_proc[0] - before_proc[0];
    assert!(
        proc_writes >= 1000 && proc_reads >= 500,
        "diskstats saw {proc_writes} writes, {proc_reads} reads"
    );
    // The program counts every device, so other I/O on the host can only add.
    assert!(
        writes >= proc_writes,
        "eBPF counted {writes} writes, diskstats {proc_writes}"
    );
    assert!(
        reads >= proc_reads,
        "eBPF counted {reads} reads, diskstats {proc_reads}"
    );
    assert!(write_sectors >= 8000, "{write_sectors} sectors written");
    assert!(read_sectors >= 4000, "{read_sectors} sectors read");
}
