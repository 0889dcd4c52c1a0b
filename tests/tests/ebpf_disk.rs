//! The block completion program, loaded by the agent's library on this
//! host's kernel, counts real I/O done by the test on its own loop device:
//! requests and bytes agree with /proc/diskstats, reads and writes are told
//! apart, and every completed request is in the latency histograms. With
//! more disks doing I/O than the program has slots, the slots fill and the
//! rest are flagged as uncovered.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::sync::{Mutex, MutexGuard};

use blipp::source::ebpf::KernelAccess;
use blipp::source::ebpf::disk::{DiskMaps, DiskSnapshot};
use blipp_common::disk::{DiskCounters, DiskOp, LatencyKind, MAX_DISKS, make_dev};
use blipp_tests::loopdev::{LoopDevice, diskstats_of};
use blipp_tests::require_root;

/// The tests here one at a time: a device one of them removes at its end
/// could be the free one the other's `losetup --find` just picked.
static LOOP_DEVICES: Mutex<()> = Mutex::new(());

/// As root, one test at a time: the completion program attached (it stays
/// attached while the returned access lives).
fn attached() -> Option<(MutexGuard<'static, ()>, KernelAccess, DiskMaps)> {
    if !require_root("loading eBPF programs and making loop devices") {
        return None;
    }
    let one_at_a_time = LOOP_DEVICES.lock().unwrap_or_else(|e| e.into_inner());
    let mut access = KernelAccess::open(false);
    let kernel = access
        .get()
        .expect("the eBPF object loads as root on this kernel");
    let maps = DiskMaps::attach(kernel).expect("block_rq_complete attaches");
    Some((one_at_a_time, access, maps))
}

fn within(ebpf: u64, proc: u64, tolerance: f64) -> bool {
    (ebpf as f64 - proc as f64).abs() <= proc as f64 * tolerance
}

#[test]
fn direct_io_matches_diskstats() {
    let Some((_one_at_a_time, _access, maps)) = attached() else {
        return;
    };
    let dev = LoopDevice::new(64).expect("loop device");
    let proc = std::path::Path::new("/proc");
    let (major, minor) = dev.numbers().unwrap();
    let devno = make_dev(major, minor);
    let mut snap = DiskSnapshot::default();
    maps.read(&mut snap).unwrap();
    let zero = blipp::source::ebpf::disk::DeviceTotals::empty(devno);
    let before = snap.device(devno).cloned().unwrap_or(zero);
    let before_proc = diskstats_of(proc, dev.name()).unwrap();

    dev.write_direct(4096, 1000).unwrap();
    dev.read_direct(8192, 500).unwrap();

    maps.read(&mut snap).unwrap();
    let after_proc = diskstats_of(proc, dev.name()).unwrap();
    let after = snap
        .device(devno)
        .expect("the loop device got a slot")
        .clone();
    let delta = |op: DiskOp| {
        let (a, b): (DiskCounters, DiskCounters) =
            (after.ops[op as usize], before.ops[op as usize]);
        (a.requests - b.requests, a.bytes - b.bytes)
    };
    let (writes, write_bytes) = delta(DiskOp::Write);
    let (reads, read_bytes) = delta(DiskOp::Read);
    // diskstats fields: reads=0, sectors read=2, writes=4, sectors written=6.
    let proc_reads = after_proc[0] - before_proc[0];
    let proc_read_bytes = (after_proc[2] - before_proc[2]) * 512;
    let proc_writes = after_proc[4] - before_proc[4];
    let proc_write_bytes = (after_proc[6] - before_proc[6]) * 512;
    eprintln!(
        "eBPF: {reads} reads {read_bytes} B, {writes} writes {write_bytes} B; \
         diskstats: {proc_reads} reads {proc_read_bytes} B, {proc_writes} writes {proc_write_bytes} B"
    );
    assert!(
        proc_writes >= 1000 && proc_reads >= 500,
        "the I/O reached the device"
    );
    assert!(
        within(writes, proc_writes, 0.02),
        "writes {writes} vs {proc_writes}"
    );
    assert!(
        within(reads, proc_reads, 0.02),
        "reads {reads} vs {proc_reads}"
    );
    assert!(within(write_bytes, proc_write_bytes, 0.02), "write bytes");
    assert!(within(read_bytes, proc_read_bytes, 0.02), "read bytes");
    // And what the test did is there, within the same 2 %: one request
    // more or less than the test's own can land between the reads of the
    // maps and of diskstats (a CI run once saw eBPF 1000 writes of
    // 4091904 B against diskstats' 1001 writes of 4096000 B).
    assert!(
        within(write_bytes, 4096 * 1000, 0.02),
        "write bytes {write_bytes} vs the 4096000 written"
    );
    assert!(
        within(read_bytes, 8192 * 500, 0.02),
        "read bytes {read_bytes} vs the 4096000 read"
    );

    // Every completed read and write request is in the total-latency
    // histogram of its operation.
    for op in [DiskOp::Read, DiskOp::Write] {
        let count = |t: &blipp::source::ebpf::disk::DeviceTotals, kind| -> u64 {
            t.histogram(op as usize, kind).iter().sum()
        };
        let (requests, _) = delta(op);
        let total = count(&after, LatencyKind::Total) - count(&before, LatencyKind::Total);
        assert_eq!(total, requests, "{op:?}: histogram count vs requests");
        let queue = count(&after, LatencyKind::Queue) - count(&before, LatencyKind::Queue);
        let device = count(&after, LatencyKind::Device) - count(&before, LatencyKind::Device);
        assert_eq!(queue, device, "{op:?}: queue and device split together");
        eprintln!("{op:?}: {total} in total histogram, {queue} with a queue/device split");
    }
}

/// Loop devices made beyond the slots, so that some find none however the
/// home slots of their numbers fall.
const EXTRA_DISKS: u32 = 8;

#[test]
fn more_disks_than_slots_are_flagged_uncovered() {
    let Some((_one_at_a_time, _access, maps)) = attached() else {
        return;
    };
    let mut snap = DiskSnapshot::default();
    maps.read(&mut snap).unwrap();
    let devices: Vec<LoopDevice> = (0..MAX_DISKS + EXTRA_DISKS)
        .map(|_| LoopDevice::new(1).expect("loop device"))
        .collect();
    // One device first: the table is read again for a claim made after
    // the last read.
    devices[0].write_direct(4096, 4).unwrap();
    maps.read(&mut snap).unwrap();
    let dev0 = devices[0].numbers().unwrap();
    assert!(
        snap.device(make_dev(dev0.0, dev0.1)).is_some(),
        "{} got a slot",
        devices[0].name()
    );
    for d in &devices[1..] {
        d.write_direct(4096, 4).unwrap();
    }
    maps.read(&mut snap).unwrap();
    let ours = devices
        .iter()
        .filter(|d| {
            let (major, minor) = d.numbers().unwrap();
            snap.device(make_dev(major, minor)).is_some()
        })
        .count();
    eprintln!(
        "{} devices with a slot ({ours} of the test's {}), uncovered: {}",
        snap.devices.len(),
        devices.len(),
        snap.uncovered
    );
    assert!(snap.devices.len() <= MAX_DISKS as usize);
    assert!(ours < devices.len(), "not every device can have a slot");
    assert!(snap.uncovered, "a device that found no slot is flagged");
}
