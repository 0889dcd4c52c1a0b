//! The process programs on this host's kernel: a child with known
//! behaviour (direct I/O of known size to the test's loop device, then
//! exit status 3) shows up as fork, exec and exit events with the right
//! pid, parent, command and exit code, and its I/O is attributed to it.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::{Duration, Instant};

use blipp::source::ebpf::KernelAccess;
use blipp::source::ebpf::process::{ExitHow, ProcessEvents, ProcessIo, comm_str};
use blipp_common::process::{ProcCount, ProcEvent, ProcEventKind};
use blipp_tests::loopdev::LoopDevice;
use blipp_tests::require_root;

const CHILD: &str = env!("CARGO_BIN_EXE_blipp-test-child");
const READ: u64 = 4 << 20;
const WRITE: u64 = 2 << 20;

#[test]
fn child_events_and_io_attribution() {
    if !require_root("loading eBPF programs and making loop devices") {
        return;
    }
    let mut access = KernelAccess::open(false);
    let kernel = access.get().expect("the eBPF object loads as root");
    let mut events = ProcessEvents::attach(kernel).expect("process programs attach");
    let io = ProcessIo::attach(kernel).expect("attribution programs attach");
    let dev = LoopDevice::new(16).unwrap();
    let mut reader = events.take_reader().unwrap();
    let mut queue = blipp::source::ebpf::process::EventReader::queue(1 << 16);
    reader.drain(&mut queue);
    let counts_before = events.counts().unwrap();

    let status = std::process::Command::new(CHILD)
        .arg(&dev.path)
        .arg(READ.to_string())
        .arg(WRITE.to_string())
        .spawn()
        .unwrap();
    let pid = status.id();
    let out = status.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "the child ran as designed");

    let mut seen: Vec<ProcEvent> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        reader.drain(&mut queue);
        queue.drain_into(&mut seen);
        if seen
            .iter()
            .any(|e| e.pid == pid && e.kind == ProcEventKind::Exit as u32)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mine: Vec<&ProcEvent> = seen.iter().filter(|e| e.pid == pid).collect();
    let kinds: Vec<Option<ProcEventKind>> = mine
        .iter()
        .map(|e| ProcEventKind::from_u32(e.kind))
        .collect();
    eprintln!("events of pid {pid}: {kinds:?}");
    assert_eq!(
        kinds,
        [
            Some(ProcEventKind::Fork),
            Some(ProcEventKind::Exec),
            Some(ProcEventKind::Exit)
        ],
        "fork, exec, exit in order"
    );
    let me = std::process::id();
    for e in &mine {
        assert_eq!(e.ppid, me, "parent of {:?}", e.kind);
    }
    let exec = mine[1];
    let exit = mine[2];
    // comm is the file name cut to 15 bytes.
    assert_eq!(comm_str(&exec.comm), "blipp-test-chil");
    assert_eq!(comm_str(&exit.comm), "blipp-test-chil");
    assert_eq!(ExitHow::from_status(exit.exit_status), ExitHow::Code(3));
    let lifetime = exit.ts_ns - exit.start_ns;
    assert!(
        exit.start_ns > 0 && lifetime > 0 && lifetime < 60_000_000_000,
        "lifetime {lifetime} ns"
    );
    eprintln!(
        "exit: lifetime {:.3} s, read {} B in {} bios, wrote {} B in {} bios",
        lifetime as f64 / 1e9,
        exit.io.read_bytes,
        exit.io.read_ios,
        exit.io.write_bytes,
        exit.io.write_ios
    );
    // The child's direct I/O, and at most a little more (its executable
    // and libraries are in the page cache, having just been built).
    let near = |got: u64, want: u64| got >= want && got <= want + want / 50 + (256 << 10);
    assert!(
        near(exit.io.read_bytes, READ),
        "read {}",
        exit.io.read_bytes
    );
    assert!(
        near(exit.io.write_bytes, WRITE),
        "write {}",
        exit.io.write_bytes
    );
    assert!(exit.io.read_ios >= READ / (512 << 10), "read bios");
    // The exit program removed the entry it reported.
    assert!(io.get(pid).is_none(), "entry of an exited process removed");

    let counts = events.counts().unwrap();
    for (i, what) in ["exec", "fork", "exit"].iter().enumerate() {
        assert!(counts[i] > counts_before[i], "{what} counted");
    }
}

/// The programs wake the agent only once the ring is an eighth full, not
/// per event: a storm of more events than the ring holds, with the
/// reader draining only when woken, loses none of them.
#[test]
fn a_storm_wakes_the_reader_before_the_ring_fills() {
    if !require_root("loading eBPF programs") {
        return;
    }
    const CHILDREN: u32 = 4000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_io()
        .build()
        .unwrap();
    let mut access = KernelAccess::open(false);
    let kernel = access.get().expect("the eBPF object loads as root");
    let mut events = ProcessEvents::attach(kernel).expect("process programs attach");
    let reader = events.take_reader().unwrap();
    let shared = {
        let _entered = runtime.enter();
        reader.spawn(1 << 20).unwrap()
    };
    let lost =
        |events: &ProcessEvents| ProcessEvents::count(&events.counts().unwrap(), ProcCount::Lost);
    let lost_before = lost(&events);
    // Fork, exec and exit of each: some 3 x 4000 events of about 100
    // bytes, several times the 256 KiB ring.
    for _ in 0..CHILDREN {
        let status = std::process::Command::new("/bin/true").status().unwrap();
        assert!(status.success());
    }
    let me = std::process::id();
    let mut seen: Vec<ProcEvent> = Vec::new();
    {
        let mut s = shared.lock().unwrap();
        s.drain();
        s.queue.drain_into(&mut seen);
        assert_eq!(s.queue.dropped, 0);
    }
    let forks = seen
        .iter()
        .filter(|e| e.kind == ProcEventKind::Fork as u32 && e.ppid == me)
        .count();
    assert_eq!(
        lost(&events) - lost_before,
        0,
        "events lost: the ring filled"
    );
    assert!(
        forks >= CHILDREN as usize,
        "{forks} forks of this test seen of {CHILDREN}"
    );
}
