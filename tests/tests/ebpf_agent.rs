//! blippd with the eBPF probes as a user runs it: a child with known
//! behaviour (direct I/O to the test's loop device, exit status 3) shows up
//! in the procevents probe's samples with its pid, parent, command, exit
//! code and I/O; the disk probe reports the loop device from eBPF with
//! latency percentiles; the agent probe publishes the programs' cost, and
//! the kernel times them only when the configuration asks for that.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::process::{Command, Stdio};

use blipp_tests::daemon::wait_for;
use blipp_tests::loopdev::LoopDevice;
use blipp_tests::{agent_bin, cap_set, json_lines, require_root};
use serde_json::{Value, json};

const CHILD: &str = env!("CARGO_BIN_EXE_blipp-test-child");
const READ: u64 = 4 << 20;
const WRITE: u64 = 1 << 20;
const ET: &str = "ps:tools:blipp:linux:";

#[test]
fn child_process_disk_latency_and_agent_cost_from_blippd() {
    if !require_root("blippd's eBPF probes") {
        return;
    }
    let dev = LoopDevice::new(16).unwrap();
    // The child's program in the page cache: else its exec pages it in
    // from disk, and those reads (16 MiB for a debug build, seen once in
    // CI under memory pressure) are rightly counted as the child's too.
    std::fs::read(CHILD).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("blipp.json");
    let doc = json!({"properties": {"configurations": {
        "probe_defaults": {"schedule_params": {"every": 1}, "mode": "ebpf"},
        "probes": {
            "disk": {"probe_module": "disk", "devices": [dev.name()]},
            "procevents": {"probe_module": "procevents", "top": 5},
            "agent": {"probe_module": "agent", "ebpf_run_time": true},
        }
    }}});
    std::fs::write(&config, doc.to_string()).unwrap();
    let agent = Command::new(agent_bin("blippd"))
        .args(["--duration", "5", "-c"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    // The probes started (start-up and the capability drop come first)
    // before the child runs.
    let log = || std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    wait_for(30, "the three probes to start", log, || {
        log().matches("probe started").count() >= 3
    });
    // Having attached its programs, blippd gave up what loading needed:
    // CAP_SYS_ADMIN (21), CAP_PERFMON (38) and CAP_BPF (39, kept only by
    // kernels that check it on map reads, which this one does not).
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.id())).unwrap();
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        let caps = cap_set(&status, set);
        for bit in [21, 38, 39] {
            assert_eq!(caps & (1 << bit), 0, "{set} still has capability {bit}");
        }
    }
    let child = Command::new(CHILD)
        .arg(&dev.path)
        .arg(READ.to_string())
        .arg(WRITE.to_string())
        .status()
        .unwrap();
    assert_eq!(child.code(), Some(3));
    let out = agent.wait_with_output().unwrap();
    let stderr = log();
    assert!(out.status.success(), "{stderr}");
    let samples = json_lines(&String::from_utf8(out.stdout).unwrap());
    let find = |subject: &str, et: &str| -> Vec<&Value> {
        samples
            .iter()
            .filter(|s| s["subject"] == subject && s["eventType"] == et)
            .map(|s| &s["value"])
            .collect()
    };

    // The child: exec and exit with parent, command and exit code.
    let me = u64::from(std::process::id());
    let exits: Vec<&Value> = samples
        .iter()
        .filter(|s| {
            s["eventType"] == format!("{ET}process:exit:code").as_str()
                && s["subject"]
                    .as_str()
                    .unwrap()
                    .starts_with("process:blipp-test-chil:")
        })
        .collect();
    assert_eq!(exits.len(), 1, "one exit of the child: {stderr}");
    assert_eq!(exits[0]["value"], 3);
    assert_eq!(exits[0]["source"], "ebpf");
    let subject = exits[0]["subject"].as_str().unwrap();
    let parent = find(subject, &format!("{ET}process:exec:parent"));
    assert_eq!(parent, [&json!(me)], "exec event with the test as parent");
    let read = find(subject, &format!("{ET}process:exit:disk:bytes:read"));
    let read = read[0].as_u64().unwrap();
    assert!(
        (READ..READ + READ / 50 + (256 << 10)).contains(&read),
        "the child's reads attributed to it: {read}"
    );
    let lifetime = find(subject, &format!("{ET}process:exit:lifetime"));
    assert!(lifetime[0].as_f64().unwrap() > 0.0);

    // The loop device from eBPF, with latency percentiles of its writes.
    let disk = format!("disk:{}", dev.name());
    let writes = find(&disk, &format!("{ET}disk:requests:write"));
    assert!(
        writes.iter().any(|v| v.as_u64().unwrap() >= WRITE / 4096),
        "{writes:?}"
    );
    assert!(
        samples
            .iter()
            .filter(|s| s["subject"] == disk.as_str())
            .filter(|s| s["eventType"].as_str().unwrap().contains(":disk:requests:"))
            .all(|s| s["source"] == "ebpf"),
        "the loop device is covered by eBPF"
    );
    let p50 = find(&disk, &format!("{ET}disk:latency:write:total:p50"));
    assert!(!p50.is_empty(), "write latency percentiles");
    assert!(p50.iter().all(|v| v.as_f64().unwrap() > 0.0));

    // The agent's cost.
    let runs = find("ebpf:block_rq_complete", "ps:tools:blipp:agent:ebpf:runs");
    assert!(
        runs.iter().any(|v| v.as_u64().unwrap() > 0),
        "program run counts: {runs:?}"
    );
    let took = find("probe:disk", "ps:tools:blipp:agent:probe:collect_seconds");
    assert!(!took.is_empty(), "collection time of the disk probe");

    run_time_statistics_stay_off_unless_asked(dir.path());
}

/// Without `ebpf_run_time` the kernel does not time blippd's programs
/// (the statistics tax every BPF program on the host), and the agent
/// probe publishes the runs it skipped but no runs or run time. Run after
/// the run above, in the same test, so that no other blippd of this test
/// binary has them on meanwhile.
fn run_time_statistics_stay_off_unless_asked(dir: &std::path::Path) {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").unwrap();
    assert_eq!(
        sysctl.trim(),
        "0",
        "kernel.bpf_stats_enabled is on (something else on this host turned it on): this check needs it off"
    );
    let config = dir.join("off.json");
    let doc = json!({"properties": {"configurations": {
        "probe_defaults": {"schedule_params": {"every": 1}, "mode": "ebpf"},
        "probes": {
            "net": {"probe_module": "net"},
            "agent": {"probe_module": "agent"},
        }
    }}});
    std::fs::write(&config, doc.to_string()).unwrap();
    let stderr = dir.join("off.stderr");
    let agent = Command::new(agent_bin("blippd"))
        .args(["--duration", "4", "-c"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&stderr).unwrap_or_default();
    wait_for(30, "the two probes to start", log, || {
        log().matches("probe started").count() >= 2
    });
    // Packets through lo run the net programs.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = socket.local_addr().unwrap();
    for _ in 0..100 {
        socket.send_to(b"blipp", to).unwrap();
    }
    let mut programs = 0;
    for fd in std::fs::read_dir(format!("/proc/{}/fdinfo", agent.id())).unwrap() {
        let info = std::fs::read_to_string(fd.unwrap().path()).unwrap_or_default();
        if !info.contains("prog_type:") {
            continue;
        }
        programs += 1;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        assert_eq!(
            (field("run_cnt:"), field("run_time_ns:")),
            (Some("0".to_owned()), Some("0".to_owned())),
            "a program of blippd's timed by the kernel without ebpf_run_time:\n{info}"
        );
    }
    assert!(programs > 0, "blippd holds no program: {}", log());
    let out = agent.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", log());
    let samples = json_lines(&String::from_utf8(out.stdout).unwrap());
    let published = |et: &str| {
        samples
            .iter()
            .filter(|s| s["subject"] == "ebpf:netif_receive_skb" && s["eventType"] == et)
            .count()
    };
    assert!(
        published("ps:tools:blipp:agent:ebpf:missed") > 0,
        "skipped runs are published either way"
    );
    assert_eq!(published("ps:tools:blipp:agent:ebpf:runs"), 0);
    assert_eq!(published("ps:tools:blipp:agent:ebpf:run_time_ns"), 0);
}
