//! blippd as a user runs it: the default configuration, bad configuration
//! files, and the ways it stops.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use blipp_tests::daemon::wait_for;
use blipp_tests::{agent_bin, require_root, run_blippd};
use serde_json::Value;

fn blippd() -> Command {
    Command::new(agent_bin("blippd"))
}

fn samples(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn meminfo_kb(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn default_configuration_prints_cpu_memory_network_disk() {
    let out = blippd()
        .args(["--once", "--mode", "proc"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples = samples(&out.stdout);
    for s in &samples {
        assert!(
            s["ts"]
                .as_u64()
                .is_some_and(|ts| ts > 1_600_000_000_000_000),
            "ts in µs: {s}"
        );
        assert!(s["subject"].as_str().is_some_and(|x| !x.is_empty()), "{s}");
        assert!(s["value"].is_number(), "{s}");
        assert_eq!(s["source"], "proc", "mode proc: {s}");
    }
    let has = |prefix: &str| {
        samples
            .iter()
            .any(|s| s["eventType"].as_str().unwrap().starts_with(prefix))
    };
    for prefix in [
        "ps:tools:blipp:linux:cpu:utilization:",
        "ps:tools:blipp:linux:cpu:load:onemin",
        "ps:tools:blipp:linux:memory:utilization:free",
        "ps:tools:blipp:linux:network:utilization:bytes:in",
        "ps:tools:blipp:linux:disk:requests:read",
    ] {
        assert!(has(prefix), "no {prefix} sample");
    }
    // used + free come from one read of meminfo: they add up to MemTotal.
    let value = |et: &str| {
        samples
            .iter()
            .find(|s| s["eventType"] == et)
            .and_then(|s| s["value"].as_u64())
            .unwrap()
    };
    assert_eq!(
        value("ps:tools:blipp:linux:memory:utilization:free")
            + value("ps:tools:blipp:linux:memory:utilization:used"),
        meminfo_kb("MemTotal")
    );
    // The first CPU read covers the time since boot: the states add up to 1.
    let cpu: f64 = samples
        .iter()
        .filter(|s| {
            let et = s["eventType"].as_str().unwrap();
            et.starts_with("ps:tools:blipp:linux:cpu:utilization:") && !et.ends_with(":guest")
        })
        .map(|s| s["value"].as_f64().unwrap())
        .sum();
    assert!((cpu - 1.0).abs() < 1e-6, "cpu fractions sum to {cpu}");
}

fn bad_config(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = run_blippd(dir.path(), text, &["--once"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        dir.path().join("blipp.json").display().to_string(),
    )
}

#[test]
fn bad_configuration_names_file_pointer_value_and_expectation() {
    let (code, err, path) = bad_config(
        r#"{"properties":{"configurations":{"probes":{"cpu":{"probe_module":"cpu","schedule_params":{"every":"abc"}}}}}}"#,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&path), "names the file: {err}");
    assert!(
        err.contains("/properties/configurations/probes/cpu/schedule_params/every"),
        "pointer: {err}"
    );
    assert!(err.contains("\"abc\""), "value: {err}");
    assert!(err.contains("expected a number"), "expectation: {err}");
    assert_eq!(err.lines().count(), 1, "one message: {err}");

    let (code, err, _) =
        bad_config(r#"{"properties":{"configurations":{"probes":{"g":{"probe_module":"gpu"}}}}}"#);
    assert_eq!(code, 2);
    assert!(
        err.contains("/properties/configurations/probes/g/probe_module") && err.contains("\"gpu\""),
        "{err}"
    );
    assert!(
        err.contains("expected one of") && err.contains("\"cpu\""),
        "unknown module is an error: {err}"
    );

    let (code, err, _) = bad_config(
        r#"{"properties":{"configurations":{"probes":{"cpu":{"probe_module":"cpu","percpus":true}}}}}"#,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("/properties/configurations/probes/cpu/percpus")
            && err.contains("unknown key"),
        "{err}"
    );

    let (code, err, path) = bad_config("{\"status\": \"ON\",\n  \"ttl\": }");
    assert_eq!(code, 2);
    assert!(err.contains(&path) && err.contains("line 2"), "{err}");
}

#[test]
fn sigint_flushes_buffered_samples_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blipp.json");
    // Report only every 1000 collections: everything printed comes from
    // the flush at shutdown.
    std::fs::write(
        &path,
        r#"{"properties":{"configurations":{"probe_defaults":{"schedule_params":{"every":0.2},"reporting_params":1000,"mode":"proc"},
            "probes":{"mem":{"probe_module":"mem"}}}}}"#,
    )
    .unwrap();
    let socket = dir.path().join("run/blippd.sock");
    let mut child = blippd()
        .arg("-c")
        .arg(&path)
        .arg("--control-socket")
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // At least four collections held in memory, as blippd's status says.
    let collections = || {
        let out = Command::new(agent_bin("blippcmd"))
            .arg("--socket")
            .arg(&socket)
            .args(["status", "--json"])
            .output()
            .unwrap();
        let status: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        status["probes"][0]["collections"].as_u64().unwrap_or(0)
    };
    wait_for(30, "four collections", String::new, || collections() >= 4);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) },
        0
    );
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped promptly"
    );
    assert!(status.success(), "exit 0 after Ctrl-C: {status}");
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let frees = samples(&out)
        .iter()
        .filter(|s| s["eventType"] == "ps:tools:blipp:linux:memory:utilization:free")
        .count();
    assert!(frees >= 4, "{frees} collections flushed");
}

#[test]
fn duration_runs_that_long_then_exits() {
    let started = Instant::now();
    let out = blippd()
        .args(["--duration", "2.5", "--mode", "proc"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(out.status.success());
    assert!(
        took >= Duration::from_millis(2400) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // Default schedule: every 5 s from the start, so exactly one collection.
    let mem = samples(&out.stdout)
        .iter()
        .filter(|s| s["eventType"] == "ps:tools:blipp:linux:memory:utilization:free")
        .count();
    assert_eq!(mem, 1);
}

#[test]
fn disk_probe_runs_from_ebpf_as_root() {
    if !require_root("the eBPF disk probe") {
        return;
    }
    let out = blippd().args(["--once", "-d", "info"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples = samples(&out.stdout);
    assert!(
        samples.iter().any(|s| s["source"] == "ebpf"
            && s["eventType"] == "ps:tools:blipp:linux:disk:requests:write"),
        "no eBPF disk sample; log: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs blippd with `config` and `--once`; it must exit 0 within 20 s.
fn once_exits(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blipp.json");
    std::fs::write(&path, config).unwrap();
    let mut child = blippd()
        .arg("-c")
        .arg(&path)
        .args(["--once", "--mode", "proc"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("blippd --once did not exit with {config}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// Regression: with one probe, `--once` hung when the probe's "done"
/// message arrived before its task had returned (a race: tried many times).
#[test]
fn once_with_a_single_probe_exits() {
    for _ in 0..20 {
        let out = once_exits(
            r#"{"properties":{"configurations":{"probes":{"mem":{"probe_module":"mem"}}}}}"#,
        );
        assert!(out.contains("memory:utilization:free"), "{out}");
    }
}

/// Regression: nothing to run is nothing to wait for.
#[test]
fn once_with_every_probe_off_exits() {
    let out = once_exits(
        r#"{"properties":{"configurations":{"probes":{"mem":{"probe_module":"mem","status":"OFF"}}}}}"#,
    );
    assert!(out.is_empty(), "{out}");
}

/// Issue 16: `--once` exited 0 when nothing could be delivered. A data
/// file that cannot be written makes it exit 3, saying so on its last
/// line; the samples that could go elsewhere (stdout) still did.
#[test]
fn once_exits_3_when_a_sink_failed() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_blippd(
        dir.path(),
        r#"{"properties":{"configurations":{"probes":{
            "m":{"probe_module":"mem","data_file":"/"},
            "c":{"probe_module":"cpu"}}}}}"#,
        &["--once", "--mode", "proc", "--control-socket", "none"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("report failed") && l.contains("writing /")),
        "{err}"
    );
    assert_eq!(
        err.lines().last(),
        Some("blippd: 1 write(s) to stdout or a data file failed; see the log")
    );
    assert!(
        samples(&out.stdout)
            .iter()
            .any(|s| s["eventType"] == "ps:tools:blipp:linux:cpu:utilization:user"),
        "cpu still printed"
    );
}

/// Issue 19: a file that is a UNIS measurement record (as the original's
/// `ping_measurement.json`) runs as that one probe, not as the built-in
/// probes; another kind of record is refused saying what it is.
#[test]
fn a_measurement_record_runs_as_its_probe_and_other_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_blippd(
        dir.path(),
        r#"{"$schema": "http://unis.crest.iu.edu/schema/20140214/measurement#",
            "service": "http://localhost:8888/services/0123456789abcdef01234567",
            "eventTypes": ["ps:tools:blipp:linux:memory:utilization:free"],
            "configuration": {"name": "memory", "probe_module": "mem",
                              "collection_schedule": "builtins.simple",
                              "schedule_params": {"every": 5}, "reporting_params": 1}}"#,
        &["--once", "--mode", "proc", "--control-socket", "none"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("the file is a UNIS measurement record"),
        "{err}"
    );
    let types: std::collections::BTreeSet<String> = samples(&out.stdout)
        .iter()
        .map(|s| s["eventType"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        types.contains("ps:tools:blipp:linux:memory:utilization:free"),
        "{types:?}"
    );
    assert!(
        types.iter().all(|t| t.contains(":memory:")),
        "only the measurement's probe ran: {types:?}"
    );

    let node = r#"{"$schema": "http://unis.crest.iu.edu/schema/20151104/node#", "name": "h"}"#;
    for args in [&["--check"][..], &["--once"][..]] {
        let out = run_blippd(dir.path(), node, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not a node record"), "{err}");
    }
}

/// Issue 19: `-D` (the original's unit runs `blippd -D -l FILE`) detaches
/// into a session of its own and writes `--pid-file` before the command
/// returns 0; SIGTERM to that pid stops it and removes the file.
#[test]
fn daemonize_detaches_writes_the_pid_file_and_removes_it_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.jsonl");
    let path = dir.path().join("blipp.json");
    std::fs::write(
        &path,
        serde_json::json!({"properties": {"configurations": {"probes": {"m": {
            "probe_module": "mem", "data_file": data, "schedule_params": {"every": 1}}}}}})
        .to_string(),
    )
    .unwrap();
    let pid_file = dir.path().join("blippd.pid");
    let log = dir.path().join("log");
    let status = blippd()
        .arg("-D")
        .arg("--pid-file")
        .arg(&pid_file)
        .arg("-l")
        .arg(&log)
        .arg("-c")
        .arg(&path)
        .args(["--mode", "proc", "--control-socket", "none"])
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    // Written before the command returned.
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let (ppid, session): (u32, i32) = (fields[1].parse().unwrap(), fields[3].parse().unwrap());
    assert_ne!(ppid, std::process::id(), "detached from the caller");
    // SAFETY: getsid(0) has no preconditions.
    assert_ne!(session, unsafe { libc::getsid(0) }, "a session of its own");
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for(30, "samples in the data file", logged, || {
        std::fs::read_to_string(&data).is_ok_and(|t| t.lines().count() > 0)
    });
    // SAFETY: kill(2) on the daemon's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    wait_for(
        30,
        "the daemon to end and remove its pid file",
        logged,
        || !pid_file.exists() && !Path::new(&format!("/proc/{pid}")).exists(),
    );
}

/// Issue 19: the original's INI file (`/etc/periscope/blippd.conf`, here
/// given with `--ini`) and node.info set what they set in the original,
/// below the JSON file; a value of the wrong type is one line, exit 2.
#[test]
fn the_originals_ini_file_and_node_info_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("blippd.conf");
    std::fs::write(
        &ini,
        "[main]\nunis_poll_interval = 30\nuse_ssl = false\ndata_file =\n\n[cpu]\nmodule = cpu\ninterval = 5\n\n[mem]\nmodule = mem\n",
    )
    .unwrap();
    let node_info = dir.path().join("node.info");
    std::fs::write(&node_info, "ms_instance=http://ms.example:8888\n").unwrap();
    let out = blippd()
        .arg("--ini")
        .arg(&ini)
        .arg("--node-info")
        .arg(&node_info)
        .arg("--check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probes: Vec<&str> = text.lines().filter_map(|l| l.split('\t').next()).collect();
    assert_eq!(
        probes,
        ["cpu", "mem"],
        "the INI's probes, not the built-in set: {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("cpu\t") && l.contains("every: 5s")),
        "{text}"
    );

    // The JSON file wins over the INI file.
    let out = run_blippd(
        dir.path(),
        r#"{"properties":{"configurations":{"probes":{"cpu":{"probe_module":"cpu","schedule_params":{"every":7}}}}}}"#,
        &[
            "--ini",
            ini.to_str().unwrap(),
            "--node-info",
            "none",
            "--check",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("cpu\t") && l.contains("every: 7s")),
        "{text}"
    );

    std::fs::write(&ini, "[main]\nunis_poll_interval = soon\n").unwrap();
    let out = blippd()
        .arg("--ini")
        .arg(&ini)
        .arg("--check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/main/unis_poll_interval: \"soon\" is invalid: a number"),
        "{err}"
    );
}
