//! The init of each `cargo xtask vm-test` guest. It prepares the machine
//! (mounts, virtio modules, the interface), parses the kernel's real /proc
//! files with blipp's own parsers, then runs blippd three times and checks
//! what it reports against the kernel's counters:
//!
//! - `root`: `auto` mode as root: every probe that has an eBPF variant must
//!   run from eBPF, with counts equal to /proc's deltas for I/O and
//!   traffic generated here;
//! - `user`: `auto` mode as an unprivileged user: every probe must fall
//!   back to /proc, say why, and still report the kernel's values;
//! - `faulty`: as root with the disk program replaced by one the verifier
//!   rejects: the disk probe must fall back with the verifier's reason;
//! - `unit`: as the shipped eBPF unit runs it (its user `blipp`, its
//!   ambient capabilities, bounding set and limits): the same as `root`,
//!   and once started blippd holds only what it keeps after start-up.
//!
//! Last, blippd runs once more as root with its built-in configuration (at
//! a 1 s interval), and its resident memory is reported once it has
//! collected a few times.
//!
//! As root, blippd re-executes itself once its programs are attached, and
//! the new image inherits them: the runs check that this happened once,
//! what the new image inherited (failed programs included), and that as
//! nobody, who loads nothing, it did not.
//!
//! Results go to the serial console as `BLIPP-VM` lines (see `report`);
//! then the guest powers off.

mod agent;
mod report;
mod sys;
mod unit;

use std::collections::HashMap;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::time::Duration;

use blipp::probe::{Fallback, REGISTRY};
use blipp::source::procfs::{diskstats, loadavg, meminfo, netdev, stat};

use agent::Who;
use report::Checks;

/// The virtio disk and network card QEMU attaches.
const DISK: &str = "vda";
const IFACE: &str = "eth0";
/// I/O and traffic generated while blippd runs as root.
const BLOCK: usize = 4096;
const WRITES: u32 = 48;
const READS: u32 = 24;
const FRAMES: u32 = 40;
const FRAME_LEN: usize = 300;
/// UDP datagrams sent over loopback to [`DATAGRAM_PORT`], which the
/// counting probes' rule counts.
const DATAGRAMS: u64 = 25;
const DATAGRAM_PORT: u16 = 9;
/// The argument that makes this program idle (not as init).
const IDLE: &str = "idle";
/// The user the `user` run's blippd becomes (nobody).
const NOBODY: u32 = 65534;
/// The eBPF unit's user (its `User=`), as this guest's /etc/passwd has it.
const SERVICE_USER: (&str, u32) = ("blipp", 999);
/// TCG is slow: generous, but bounded.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a collection after the I/O may take to be reported (probes
/// collect every second; TCG on a loaded host is slow).
const COLLECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the interface may take to send the test's frames.
const SENT_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    if std::process::id() != 1 {
        if std::env::args().nth(1).as_deref() == Some(IDLE) {
            // The process the process probe follows.
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        report::line("this program is a VM's init; it only runs as PID 1");
        std::process::exit(2);
    }
    std::panic::set_hook(Box::new(|info| {
        report::line(&format!("CHECK FAIL guest/panic: {info}"));
        report::line("DONE passed=0 failed=1");
        sys::power_off();
    }));
    let mut c = Checks::default();
    let proc = sys::mount("proc", "/proc");
    // How long the kernel took to reach init, by the guest's own clock.
    let uptime = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
    report::line(&format!(
        "BOOT uptime={}",
        uptime.split_whitespace().next().unwrap_or("?")
    ));
    c.check("setup", "mount-proc", proc.is_ok(), format!("{proc:?}"));
    setup(&mut c);
    parsers(&mut c);
    // A process owned by nobody, which both root's and nobody's blippd can
    // read entirely, for the process probe.
    let idler = std::process::Command::new("/init")
        .arg(IDLE)
        .uid(NOBODY)
        .gid(NOBODY)
        .spawn();
    c.check(
        "setup",
        "idle-process",
        idler.is_ok(),
        format!("{:?}", idler.as_ref().map(std::process::Child::id)),
    );
    let idler = idler.map_or(0, |c| c.id());
    architecture(&mut c, idler);
    for (run, check) in [
        ("root", run_root as fn(&mut Checks, &Outcome)),
        ("user", run_user),
        ("faulty", run_faulty),
        ("unit", run_unit),
    ] {
        let failed = c.failed();
        let (who, env): (Who, &[(&str, &str)]) = match run {
            "user" => (Who::User(NOBODY), &[]),
            "faulty" => (Who::Root, &[("BLIPP_FAULT_VERIFIER", "block_rq_complete")]),
            "unit" => {
                let (name, uid) = SERVICE_USER;
                match unit::identity(uid, uid, name) {
                    Ok(id) => (Who::Unit(id), &[]),
                    Err(e) => {
                        c.check(run, "unit-file", false, e);
                        continue;
                    }
                }
            }
            _ => (Who::Root, &[]),
        };
        let log = run_agent(&mut c, run, &who, env, idler).map(|o| {
            check(&mut c, &o);
            o.log
        });
        if c.failed() > failed {
            report::dump(run, &log.unwrap_or_default());
        }
    }
    memory(&mut c);
    c.done();
    sys::power_off();
}

/// Collections of the built-in configuration before its memory is read:
/// by then every probe has read its files and its kernel maps at least
/// twice and reported, and the buffers of a steady tick are allocated.
const MEMORY_COLLECTIONS: usize = 3;

/// blippd as most hosts run it, as root with the built-in configuration
/// (the default probes: cpu, mem, net, disk; eBPF where it can) at a 1 s
/// interval: its resident memory once it has collected a few times,
/// reported as an `RSS` line, which the host prints beside the kernel's
/// row.
fn memory(c: &mut Checks) {
    let run = "default";
    let failed = c.failed();
    let out = "/tmp/default.jsonl";
    let config = "/tmp/default.json";
    // The built-in configuration collecting every second rather than every
    // five, as `cargo xtask bench userspace` runs it: the same probes and
    // buffers, three collections in seconds.
    let mut builtin = blipp::config::builtin_defaults();
    builtin["properties"]["configurations"]["probe_defaults"]["schedule_params"]["every"] =
        1.into();
    let a = std::fs::write(config, builtin.to_string())
        .and_then(|()| std::fs::File::create(out))
        .and_then(|f| agent::Agent::start_printing(config, f))
        .map_err(|e| e.to_string());
    let mut a = match a {
        Ok(a) => a,
        Err(e) => {
            c.check(run, "start", false, e);
            return;
        }
    };
    // (name, module) of each built-in probe.
    let probes: Vec<(String, String)> = builtin["properties"]["configurations"]["probes"]
        .as_object()
        .map(|p| {
            p.iter()
                .map(|(name, probe)| {
                    let module = probe["probe_module"].as_str().unwrap_or(name);
                    (name.clone(), module.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let started = a.wait_started(probes.len(), START_TIMEOUT);
    let collected = agent::wait_collections(out, MEMORY_COLLECTIONS, START_TIMEOUT);
    let status = a.status();
    let (exit, log) = a.stop(STOP_TIMEOUT);
    // The default probes measure as on a host: from eBPF where they can.
    let modes: HashMap<String, String> = started
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.probe, s.source))
        .collect();
    let mut mode_line = format!("MODE {run}");
    for (p, module) in &probes {
        let got = modes.get(p).map_or("-", String::as_str);
        mode_line.push_str(&format!(" {p}={got}"));
        let want = if has_ebpf(module) { "ebpf" } else { "proc" };
        c.check(
            run,
            &format!("mode-{p}"),
            got == want,
            format!("{got} (want {want})"),
        );
    }
    report::line(&mode_line);
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    let (rss, hwm) = (kb("VmRSS"), kb("VmHWM"));
    c.check(
        run,
        "collected",
        collected && rss.is_some() && hwm.is_some(),
        format!(
            "{MEMORY_COLLECTIONS} cpu collections on stdout; VmRSS {rss:?} kB, VmHWM {hwm:?} kB"
        ),
    );
    c.check(
        run,
        "exit",
        exit.is_some_and(|s| s.success()),
        format!("{exit:?}"),
    );
    if let (Some(rss), Some(hwm)) = (rss, hwm) {
        report::line(&format!("RSS run={run} rss_kb={rss} hwm_kb={hwm}"));
    }
    if c.failed() > failed {
        report::dump(run, &log);
    }
}

/// Mounts, modules, devices, the interface.
fn setup(c: &mut Checks) {
    for (fs, target) in [
        ("sysfs", "/sys"),
        ("devtmpfs", "/dev"),
        ("tmpfs", "/tmp"),
        ("debugfs", "/sys/kernel/debug"),
        ("tracefs", "/sys/kernel/tracing"),
        ("bpf", "/sys/fs/bpf"),
    ] {
        let r = sys::mount(fs, target);
        c.check("setup", &format!("mount-{fs}"), r.is_ok(), format!("{r:?}"));
    }
    let _ = std::fs::set_permissions("/tmp", std::os::unix::fs::PermissionsExt::from_mode(0o1777));
    // The users every host has, and the eBPF unit's: blippd runs its
    // commands as nobody (there is no blipp-cmd here) and looks the user
    // up by name.
    let users = std::fs::create_dir_all("/etc")
        .and_then(|()| {
            std::fs::write(
                "/etc/passwd",
                format!(
                    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n{0}:x:{1}:{1}:{0}:/nonexistent:/bin/false\n",
                    SERVICE_USER.0, SERVICE_USER.1
                ),
            )
        })
        .and_then(|()| {
            std::fs::write(
                "/etc/group",
                format!(
                    "root:x:0:\nnogroup:x:65534:\n{0}:x:{1}:\n",
                    SERVICE_USER.0, SERVICE_USER.1
                ),
            )
        });
    c.check("setup", "users", users.is_ok(), format!("{users:?}"));
    let order = std::fs::read_to_string("/modules/load-order").unwrap_or_default();
    let mut loaded = Vec::new();
    let mut failed = Vec::new();
    for name in order.lines().filter(|l| !l.is_empty()) {
        match sys::load_module(&Path::new("/modules").join(name)) {
            Ok(()) => loaded.push(name),
            Err(e) => failed.push(e.to_string()),
        }
    }
    c.check(
        "setup",
        "modules",
        failed.is_empty(),
        format!("loaded {loaded:?}; errors {failed:?}"),
    );
    let disk = format!("/sys/block/{DISK}");
    let iface = format!("/sys/class/net/{IFACE}");
    let appeared = wait_for(&[&disk, &iface], Duration::from_secs(20));
    c.check("setup", "devices", appeared, format!("{disk} and {iface}"));
    // No IPv6 autoconfiguration: the interface must send only our frames.
    for conf in ["all", "default", IFACE] {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1");
    }
    let up = sys::link_up("lo").and_then(|()| sys::link_up(IFACE));
    c.check("setup", "link-up", up.is_ok(), format!("{up:?}"));
}

fn wait_for(paths: &[&str], timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if paths.iter().all(|p| Path::new(p).exists()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// blipp's parsers on this kernel's real files.
fn parsers(c: &mut Checks) {
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{f}")).unwrap_or_default();
    let mut disks = Vec::new();
    let r = diskstats::parse_into(&read("diskstats"), &mut disks);
    let vda = disks.iter().find(|d| d.name == DISK);
    c.check(
        "parse",
        "diskstats",
        r.is_ok() && vda.is_some_and(|d| d.io_ms.is_some()),
        format!("{r:?}, {} devices, {DISK}: {vda:?}", disks.len()),
    );
    let mut st = stat::Stat::default();
    let r = stat::parse_into(&read("stat"), &mut st);
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    c.check(
        "parse",
        "stat",
        r.is_ok()
            && st.cpus.len() == cpu_count(&online)
            && st.all.total() > 0
            && st.btime.is_some(),
        format!(
            "{r:?}, {} cpus (online {}), cpu total {}",
            st.cpus.len(),
            online.trim(),
            st.all.total()
        ),
    );
    let m = meminfo::parse(&read("meminfo"));
    let ok = m.as_ref().is_ok_and(|m| {
        m.total
            .is_some_and(|t| t > 0 && m.free.is_some_and(|f| f <= t))
    });
    c.check("parse", "meminfo", ok, format!("{m:?}"));
    let mut devs = Vec::new();
    let r = netdev::parse_into(&read("net/dev"), &mut devs);
    let names: Vec<&str> = devs.iter().map(|d| d.name.as_str()).collect();
    c.check(
        "parse",
        "net-dev",
        r.is_ok() && names.contains(&"lo") && names.contains(&IFACE),
        format!("{r:?}, interfaces {names:?}"),
    );
    let l = loadavg::parse(&read("loadavg"));
    c.check("parse", "loadavg", l.is_ok(), format!("{l:?}"));
    // The layouts the block programs are given on this kernel: a classic
    // tracepoint's fields from tracefs, struct request's members from BTF
    // (offsets move between 5.10 and 6.x).
    let layout =
        blipp::source::ebpf::disk::bio_layout(Path::new("/sys/kernel/tracing"), "block_getrq");
    c.check(
        "parse",
        "tracefs-block_getrq",
        layout.is_ok(),
        match &layout {
            Ok(l) => format!("dev@{} nr_sector@{} rwbs@{}", l.dev, l.nr_sector, l.rwbs),
            Err(e) => e.to_string(),
        },
    );
    let request = blipp::source::ebpf::btf::Btf::from_sys_fs()
        .map_err(|e| e.to_string())
        .and_then(|b| blipp::source::ebpf::disk::request_layout(&b).map_err(|e| e.to_string()));
    c.check(
        "parse",
        "btf-struct-request",
        request.is_ok(),
        match &request {
            Ok(l) => format!(
                "cmd_flags@{} start_time_ns@{} io_start_time_ns@{} rq_disk@{:?}",
                l.cmd_flags,
                l.start_time_ns,
                l.io_start_time_ns,
                (l.rq_disk != u32::MAX).then_some(l.rq_disk)
            ),
            Err(e) => e.clone(),
        },
    );
}

/// What blipp takes from the architecture, against this kernel: the
/// machine it was built for, the width of the kernel's `unsigned long`
/// counters, the page size (4, 16 or 64 KiB on arm64) and `USER_HZ`
/// (the process just started, by its start time in ticks, started at
/// most a second ago).
fn architecture(c: &mut Checks, process: u32) {
    let now = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok());
    let machine = blipp::host::uname().map(|u| u.machine).unwrap_or_default();
    let ulong = blipp::counter::Width::kernel_ulong();
    c.check(
        "setup",
        "arch-machine",
        machine == std::env::consts::ARCH && ulong == blipp::counter::Width::Bits64,
        format!(
            "uname -m {machine}, built for {}, unsigned long {ulong:?}",
            std::env::consts::ARCH
        ),
    );
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let kernel_page = smaps
        .lines()
        .find_map(|l| l.strip_prefix("KernelPageSize:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024);
    let page = blipp::host::page_size();
    c.check(
        "setup",
        "arch-page-size",
        kernel_page == Some(page),
        format!("sysconf {page}, smaps {kernel_page:?}"),
    );
    let hz = blipp::host::clock_ticks_per_second();
    let ticks = std::fs::read_to_string(format!("/proc/{process}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised name; starttime is field 22.
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().nth(19)?.parse::<u64>().ok()
        });
    let started = ticks.map(|t| t as f64 / hz as f64);
    c.check(
        "setup",
        "arch-user-hz",
        matches!((started, now), (Some(s), Some(n)) if s <= n + 0.01 && n - s < 1.0),
        format!("USER_HZ {hz}: process started at {started:?} s, uptime {now:?} s"),
    );
}

/// Counts the CPUs of a sysfs CPU list such as `0-3,5`.
fn cpu_count(list: &str) -> usize {
    list.trim()
        .split(',')
        .filter(|r| !r.is_empty())
        .map(|r| match r.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => usize::from(r.parse::<usize>().is_ok()),
        })
        .sum()
}

/// The kernel's own counters for the disk and the interface.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    reads: u64,
    writes: u64,
    sectors_read: u64,
    sectors_written: u64,
    tx_packets: u64,
    tx_bytes: u64,
}

fn counters() -> Counters {
    let mut disks = Vec::new();
    let _ = diskstats::parse_into(
        &std::fs::read_to_string("/proc/diskstats").unwrap_or_default(),
        &mut disks,
    );
    let mut devs = Vec::new();
    let _ = netdev::parse_into(
        &std::fs::read_to_string("/proc/net/dev").unwrap_or_default(),
        &mut devs,
    );
    let mut k = Counters::default();
    if let Some(d) = disks.iter().find(|d| d.name == DISK) {
        (k.reads, k.writes, k.sectors_read, k.sectors_written) =
            (d.reads, d.writes, d.sectors_read, d.sectors_written);
    }
    if let Some(n) = devs.iter().find(|d| d.name == IFACE) {
        (k.tx_packets, k.tx_bytes) = (n.tx_packets, n.tx_bytes);
    }
    k
}

/// What one run of blippd gave.
struct Outcome {
    modes: HashMap<String, String>,
    samples: HashMap<&'static str, Vec<agent::Sample>>,
    log: String,
    /// blippd's /proc/PID/status once its probes started.
    status: String,
    before: Counters,
    after: Counters,
}

/// Runs blippd with every probe, generates I/O and traffic once all probes
/// started, lets it collect, stops it, and checks what every run must
/// show: all probes started, a clean exit, samples from every probe in its
/// data file, and the /proc values equal to the kernel's.
fn run_agent(
    c: &mut Checks,
    run: &str,
    who: &Who,
    env: &[(&str, &str)],
    process: u32,
) -> Option<Outcome> {
    let modules: Vec<&str> = agent::modules()
        .into_iter()
        .filter(|m| runs(who, m))
        .collect();
    let config = match agent::write_config(run, process, DATAGRAM_PORT) {
        Ok(p) => p,
        Err(e) => {
            c.check(run, "config", false, e);
            return None;
        }
    };
    let mut a = match agent::Agent::start(&config, who, env) {
        Ok(a) => a,
        Err(e) => {
            c.check(run, "start", false, e);
            return None;
        }
    };
    let started = a.wait_started(modules.len(), START_TIMEOUT);
    // Probes start once start-up, capability drop included, is over.
    let proc_status = a.status();
    c.check(
        run,
        "started",
        started.is_ok(),
        match &started {
            Ok(s) => format!("{} probes", s.len()),
            Err(e) => e.clone(),
        },
    );
    // The eBPF net counts are compared with the traffic below: wait until
    // the probe reports them (has anchored eth0) before sending it.
    let net_on_ebpf = started
        .as_ref()
        .is_ok_and(|s| s.iter().any(|s| s.probe == "net" && s.source == "ebpf"));
    if net_on_ebpf {
        let eth = format!("port:{IFACE}");
        let anchored =
            agent::wait_reported(run, "net", (&eth, ":packets:out", "ebpf"), COLLECT_TIMEOUT);
        c.check(
            run,
            "net-ebpf-anchored",
            anchored,
            format!("eBPF counts of {eth} reported before the traffic within {COLLECT_TIMEOUT:?}"),
        );
    }
    let before = counters();
    let io = sys::direct_io(&format!("/dev/{DISK}"), BLOCK, WRITES, READS);
    c.check(
        run,
        "disk-io",
        io.is_ok(),
        format!("{WRITES} writes, {READS} reads: {io:?}"),
    );
    let udp = sys::send_datagrams(DATAGRAM_PORT, DATAGRAMS);
    c.check(
        run,
        "datagrams",
        udp.is_ok(),
        format!("{DATAGRAMS} UDP datagrams to 127.0.0.1:{DATAGRAM_PORT}: {udp:?}"),
    );
    let tx = sys::send_frames(IFACE, FRAMES, FRAME_LEN);
    c.check(
        run,
        "traffic",
        tx.is_ok(),
        format!("{FRAMES} frames: {tx:?}"),
    );
    // Direct I/O is done when the calls return, but frames can still sit
    // in the qdisc: wait (bounded) until the driver has sent them all, so
    // that `after` and the collection below see the finished traffic.
    let deadline = std::time::Instant::now() + SENT_TIMEOUT;
    let mut after = counters();
    while after.tx_packets - before.tx_packets < u64::from(FRAMES)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
        after = counters();
    }
    // The last samples must come from a collection after the I/O and the
    // traffic: wait for one (disk, net, and agent with the programs'
    // missed runs) rather than for a fixed time.
    let since = sys::now_micros();
    let mut watched = vec!["disk", "net", "agent"];
    if runs(who, "counting") {
        watched.push("counting");
    }
    let collected = agent::wait_collected_after(run, &watched, since, COLLECT_TIMEOUT);
    c.check(
        run,
        "collected-after-io",
        collected,
        format!("disk, net and agent samples after the I/O within {COLLECT_TIMEOUT:?}"),
    );
    let (status, log) = a.stop(STOP_TIMEOUT);
    c.check(
        run,
        "exit",
        status.is_some_and(|s| s.success()),
        format!("{status:?}"),
    );
    let mut modes = HashMap::new();
    for s in started.unwrap_or_default() {
        modes.insert(s.probe, s.source);
    }
    let mut mode_line = format!("MODE {run}");
    for m in &agent::modules() {
        mode_line.push_str(&format!(
            " {m}={}",
            modes.get(*m).map_or("-", String::as_str)
        ));
    }
    report::line(&mode_line);
    let mut samples = HashMap::new();
    for m in &modules {
        let s = agent::read_samples(&agent::data_file(run, m));
        let detail = match &s {
            Ok(v) => format!("{} samples", v.len()),
            Err(e) => e.clone(),
        };
        c.check(
            run,
            &format!("samples-{m}"),
            s.as_ref().is_ok_and(|v| !v.is_empty()),
            detail,
        );
        samples.insert(*m, s.unwrap_or_default());
    }
    // The I/O and traffic really happened, and nothing else ran on the
    // disk and interface (the eBPF counts are compared with these deltas).
    c.equal(
        run,
        "kernel-disk-writes",
        Some(after.writes - before.writes),
        u64::from(WRITES),
        "diskstats write delta",
    );
    c.equal(
        run,
        "kernel-disk-reads",
        Some(after.reads - before.reads),
        u64::from(READS),
        "diskstats read delta",
    );
    c.equal(
        run,
        "kernel-tx-packets",
        Some(after.tx_packets - before.tx_packets),
        u64::from(FRAMES),
        "net/dev tx packet delta",
    );
    // /proc sources: the last values blippd reported are the kernel's.
    // (A probe running from eBPF reports these quantities from its
    // programs instead; see run_root.)
    let disk = samples.get("disk").map(Vec::as_slice).unwrap_or_default();
    let subject = format!("disk:{DISK}");
    let net = samples.get("net").map(Vec::as_slice).unwrap_or_default();
    let port = format!("port:{IFACE}");
    let from_proc = |m: &str| modes.get(m).map(String::as_str) == Some("proc");
    if from_proc("disk") {
        c.equal(
            run,
            "disk-proc-writes",
            agent::last(disk, &subject, ":requests:write", "proc"),
            after.writes,
            "last disk:vda requests:write vs /proc/diskstats",
        );
        c.equal(
            run,
            "disk-proc-sectors-written",
            agent::last(disk, &subject, ":sectors:write", "proc"),
            after.sectors_written,
            "last disk:vda sectors:write vs /proc/diskstats",
        );
    }
    if from_proc("net") {
        c.equal(
            run,
            "net-proc-bytes-out",
            agent::last(net, &port, ":utilization:bytes:out", "proc"),
            after.tx_bytes,
            "last port:eth0 bytes:out vs /proc/net/dev",
        );
        c.equal(
            run,
            "net-proc-packets-out",
            agent::last(net, &port, ":packets:out", "proc"),
            after.tx_packets,
            "last port:eth0 packets:out vs /proc/net/dev",
        );
    }
    // QEMU gives the card 1000 Mb/s: the port probe reports it in bytes/s.
    let port_samples = samples.get("port").map(Vec::as_slice).unwrap_or_default();
    c.equal(
        run,
        "port-capacity",
        agent::last(port_samples, &port, "link:capacity", "proc"),
        125_000_000,
        "port:eth0 link capacity, bytes/s",
    );
    Some(Outcome {
        modes,
        samples,
        log,
        status: proc_status,
        before,
        after,
    })
}

/// Has this probe an eBPF variant (then `auto` as root must use it)?
fn has_ebpf(module: &str) -> bool {
    REGISTRY
        .iter()
        .any(|s| s.module == module && s.fallback.has_ebpf())
}

/// Does this probe measure with eBPF only (then it does not run as
/// nobody, and says why)?
fn ebpf_only(module: &str) -> bool {
    REGISTRY
        .iter()
        .any(|s| s.module == module && s.fallback == Fallback::None)
}

/// Does probe `module` run when blippd runs as `who`?
fn runs(who: &Who, module: &str) -> bool {
    !(matches!(who, Who::User(_)) && ebpf_only(module))
}

/// The source a probe reports without eBPF: `command` for those that run
/// a program, `log` for the log follower, `proc` for the others.
fn userspace_source(module: &str) -> &'static str {
    match module {
        "cmd" | "cmd_line_probe" | "nagios" | "json_probe" | "ceph_probe" | "traceroute"
        | "traceroute_probe" => "command",
        "netlogger" | "netlogger_probe" => "log",
        _ => "proc",
    }
}

/// How many times blippd logged its re-execution after loading, and the
/// line where the new image says what it inherited.
fn reexecution(log: &str) -> (usize, Option<&str>) {
    let count = log
        .matches("re-executing to leave the loading memory behind")
        .count();
    let inherited = log
        .lines()
        .find(|l| l.contains("inherited from the image that loaded them"));
    (count, inherited)
}

/// Checks that blippd re-executed once and that the new image inherited
/// what `inherited` wants of its line.
fn check_reexecuted(c: &mut Checks, run: &str, log: &str, inherited: impl Fn(&str) -> bool) {
    let (count, line) = reexecution(log);
    c.check(
        run,
        "reexec",
        count == 1 && line.is_some_and(inherited),
        format!(
            "{count} re-executions; {}",
            line.unwrap_or("no inherited line")
        ),
    );
}

/// `auto` as root: eBPF wherever a probe has it, counts equal to /proc's.
fn run_root(c: &mut Checks, o: &Outcome) {
    run_ebpf(c, "root", o);
}

/// As the eBPF unit runs it: what `root` shows, as another user, and
/// after start-up only the capabilities blippd keeps (caps.rs), none of
/// them ambient.
fn run_unit(c: &mut Checks, o: &Outcome) {
    run_ebpf(c, "unit", o);
    let field = |key: &str| {
        o.status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or("")
    };
    let uid = field("Uid");
    c.check(
        "unit",
        "user",
        uid.split_whitespace()
            .all(|id| id == SERVICE_USER.1.to_string()),
        format!("Uid {uid}"),
    );
    let set = |key: &str| u64::from_str_radix(field(key), 16).ok();
    let kept = blipp::source::ebpf::caps::KEPT
        .iter()
        .fold(1 << 39, |m, (bit, _)| m | 1 << bit);
    for key in ["CapEff", "CapPrm", "CapBnd"] {
        let held = set(key);
        c.check(
            "unit",
            &format!("kept-{key}"),
            held.is_some_and(|h| h & !kept == 0),
            format!(
                "{:?}, want only {:?} (CAP_BPF where map reads need it)",
                held.map(blipp::source::ebpf::caps::names),
                blipp::source::ebpf::caps::names(kept)
            ),
        );
    }
    c.check(
        "unit",
        "no-ambient",
        set("CapAmb") == Some(0),
        format!("CapAmb {}", field("CapAmb")),
    );
}

/// eBPF wherever a probe has it, counts equal to /proc's.
fn run_ebpf(c: &mut Checks, run: &str, o: &Outcome) {
    // Every program attached, and the process programs' log records are
    // forwarded by the new image.
    check_reexecuted(c, run, &o.log, |l| {
        l.contains("failed=[]") && l.contains("kernel_log=true")
    });
    for m in agent::modules() {
        let want = if has_ebpf(m) {
            "ebpf"
        } else {
            userspace_source(m)
        };
        let got = o.modes.get(m).map_or("-", String::as_str);
        let why = if got == want {
            String::new()
        } else {
            fallback_reason(&o.log, m)
        };
        c.check(
            run,
            &format!("mode-{m}"),
            got == want,
            format!("{got} (want {want}) {why}"),
        );
        let from_ebpf = o
            .samples
            .get(m)
            .is_some_and(|s| s.iter().any(|s| s.source == "ebpf"));
        c.check(
            run,
            &format!("ebpf-samples-{m}"),
            from_ebpf == (want == "ebpf"),
            format!("samples with source ebpf: {from_ebpf}"),
        );
    }
    // eBPF counts: the programs count from when they were attached (before
    // the I/O and the traffic); only the test's I/O and frames touched the
    // virtio disk and the interface, so the disk counts equal the kernel's
    // deltas exactly, and the net counts, which keep /proc's origin (the
    // net probe anchors them to /proc/net/dev), equal /proc's totals.
    // The counting probe's rule saw exactly the test's datagrams.
    let counting = o
        .samples
        .get("counting")
        .map(Vec::as_slice)
        .unwrap_or_default();
    c.equal(
        run,
        "counting-datagrams",
        agent::last(counting, "count:vmtest-udp", ":count:packets", "ebpf"),
        DATAGRAMS,
        &format!("eBPF count of UDP to port {DATAGRAM_PORT}, sent"),
    );
    let disk = o.samples.get("disk").map(Vec::as_slice).unwrap_or_default();
    let net = o.samples.get("net").map(Vec::as_slice).unwrap_or_default();
    let agent = o
        .samples
        .get("agent")
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (b, a) = (o.before, o.after);
    let (vda, eth) = (format!("disk:{DISK}"), format!("port:{IFACE}"));
    // (check, samples, subject, event type suffix, the kernel's delta,
    // program, most one event of the test's can add: a request, a block's
    // sectors, a packet, a frame's bytes)
    let sectors = (BLOCK / 512) as u64;
    let frame = FRAME_LEN as u64;
    let disk_prog = "block_rq_complete";
    let net_prog = "net_dev_xmit";
    for (name, samples, subject, suffix, want, program, unit) in [
        (
            "disk-ebpf-writes",
            disk,
            &vda,
            ":requests:write",
            a.writes - b.writes,
            disk_prog,
            1,
        ),
        (
            "disk-ebpf-reads",
            disk,
            &vda,
            ":requests:read",
            a.reads - b.reads,
            disk_prog,
            1,
        ),
        (
            "disk-ebpf-sectors-written",
            disk,
            &vda,
            ":sectors:write",
            a.sectors_written - b.sectors_written,
            disk_prog,
            sectors,
        ),
        (
            "disk-ebpf-sectors-read",
            disk,
            &vda,
            ":sectors:read",
            a.sectors_read - b.sectors_read,
            disk_prog,
            sectors,
        ),
        (
            "net-ebpf-packets-out",
            net,
            &eth,
            ":packets:out",
            a.tx_packets,
            net_prog,
            1,
        ),
        (
            "net-ebpf-bytes-out",
            net,
            &eth,
            ":utilization:bytes:out",
            a.tx_bytes,
            net_prog,
            frame,
        ),
    ] {
        let got = agent::last(samples, subject, suffix, "ebpf");
        // Runs the kernel skipped because the program was already running
        // on that CPU (an interrupt arriving during a run), as the agent
        // probe publishes them: the only events eBPF may miss. Without
        // any, the counts must be exact.
        let missed =
            agent::last(agent, &format!("ebpf:{program}"), ":ebpf:missed", "proc").unwrap_or(0);
        let what =
            format!("eBPF {subject}{suffix} vs the kernel's count, {program} missed {missed} runs");
        match got {
            Some(v) if missed > 0 => c.check(
                run,
                name,
                v <= want && v + missed * unit >= want,
                format!("{what}: {v} (want {want})"),
            ),
            _ => c.equal(run, name, got, want, &what),
        }
    }
}

/// The reason blippd logged for falling back `probe` to /proc, with the
/// lines that continue it (a verifier log spans several).
fn fallback_reason(log: &str, probe: &str) -> String {
    let mut lines = log
        .lines()
        .skip_while(|l| !(l.contains("falling back") && l.contains(&format!("probe={probe} "))));
    let Some(first) = lines.next() else {
        return "no fallback line".to_owned();
    };
    // Log records start with their RFC 3339 timestamp; anything else
    // continues the record before.
    let is_record =
        |l: &str| l.as_bytes().get(4) == Some(&b'-') && l.as_bytes().get(10) == Some(&b'T');
    let mut reason = first.trim().to_owned();
    for l in lines.take_while(|l| !is_record(l)) {
        reason.push_str(" | ");
        reason.push_str(l.trim());
    }
    reason
}

/// `auto` as nobody: every probe on /proc (or its command or log), each
/// fallback with a reason.
fn run_user(c: &mut Checks, o: &Outcome) {
    let (count, line) = reexecution(&o.log);
    c.check(
        "user",
        "no-reexec",
        count == 0 && line.is_none(),
        format!("{count} re-executions without the object loaded"),
    );
    for m in agent::modules() {
        if ebpf_only(m) {
            // Not started, with the reason, and retried; never zeros.
            let line = o
                .log
                .lines()
                .find(|l| l.contains("probe not started") && l.contains(&format!("probe={m} ")));
            c.check(
                "user",
                &format!("not-started-{m}"),
                line.is_some_and(|l| l.contains("eBPF")) && !o.samples.contains_key(m),
                line.unwrap_or("no 'probe not started' line").to_owned(),
            );
            continue;
        }
        let want = userspace_source(m);
        let got = o.modes.get(m).map_or("-", String::as_str);
        let only_want = o
            .samples
            .get(m)
            .is_some_and(|s| s.iter().all(|s| s.source == want));
        c.check(
            "user",
            &format!("mode-{m}"),
            got == want && only_want,
            format!("{got}, all samples from {want}: {only_want}"),
        );
        if has_ebpf(m) {
            let reason = fallback_reason(&o.log, m);
            c.check(
                "user",
                &format!("fallback-reason-{m}"),
                reason.contains("reason="),
                reason,
            );
        }
    }
}

/// The disk program replaced by one the verifier rejects: the disk probe
/// falls back with the verifier's words, the others are untouched.
fn run_faulty(c: &mut Checks, o: &Outcome) {
    // The rejection happened before the re-execution: the new image knows
    // the program failed, and its disk probe falls back with those words.
    check_reexecuted(c, "faulty", &o.log, |l| {
        l.contains(r#"failed=["block_rq_complete"]"#)
    });
    let got = o.modes.get("disk").map_or("-", String::as_str);
    c.check(
        "faulty",
        "mode-disk",
        got == "proc",
        format!("{got} (want proc)"),
    );
    let reason = fallback_reason(&o.log, "disk");
    c.check(
        "faulty",
        "verifier-reason",
        reason.contains("program block_rq_complete") && reason.contains("Verifier output:"),
        reason,
    );
    for m in agent::modules()
        .into_iter()
        .filter(|m| *m != "disk" && has_ebpf(m))
    {
        let got = o.modes.get(m).map_or("-", String::as_str);
        c.check(
            "faulty",
            &format!("mode-{m}"),
            got == "ebpf",
            format!("{got} (want ebpf)"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_count("0\n"), 1);
        assert_eq!(cpu_count("0-3,5"), 5);
        assert_eq!(cpu_count(""), 0);
    }
}
