//! The original BLiPP's configurations: its `$schema` probes get blipp's
//! presets and run the real programs (ping, iperf3) on loopback, and its
//! adaptive scheduler test runs with the `dummy` probe.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use blipp_tests::netns::NetNs;
use blipp_tests::{agent_bin, blippd_samples, json_lines, require_root, require_tool};
use serde_json::{Value, json};

const PING: &str = "http://unis.crest.iu.edu/schema/blippmeasurements/20130429/ping#";
const IPERF: &str = "http://unis.incntre.iu.edu/schema/blippmeasurements/20130429/iperf";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/original")
        .join(name)
}

fn of<'a>(samples: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    samples
        .iter()
        .filter(|s| s["eventType"] == event_type)
        .collect()
}

/// A network namespace with its loopback up, where unprivileged ICMP
/// sockets are allowed to every group (the setting is per namespace, so
/// the host's stays as it is).
fn loopback_ns(tag: &str) -> NetNs {
    let ns = NetNs::new(tag).unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    // Written from a thread inside the namespace: /proc/sys/net shows
    // the writer's namespace. No `sysctl` binary needed.
    ns.run(|| std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647"))
        .unwrap()
        .unwrap();
    ns
}

/// blippd with `config`, inside `ns`, until it exits (`args` must make it
/// exit); its samples.
fn blippd_in(ns: &NetNs, config: &Value, args: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blipp.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(agent_bin("blippd"))
        .args(["--ini", "none", "--node-info", "none", "-c"])
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let samples = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert!(!samples.is_empty(), "no samples; log:\n{log}");
    samples
}

fn probes(probes: Value) -> Value {
    json!({"properties": {"configurations": {"probes": probes}}})
}

#[test]
fn the_originals_sample_configurations_pass_check() {
    for (file, expected) in [
        (
            "schema_probes.json",
            &[
                "loss_check\tmodule=cmd_line_probe",
                "throughput\tmodule=cmd_line_probe",
                "old_host_ping\tmodule=cmd_line_probe",
                "cpu\tmodule=cpu",
            ][..],
        ),
        ("owping.json", &["one_way\tmodule=cmd_line_probe"][..]),
        (
            "adaptive_scheduler.json",
            &["first\tmodule=dummy", "third\tmodule=dummy"][..],
        ),
    ] {
        let out = Command::new(agent_bin("blippd"))
            .args(["--ini", "none", "--node-info", "none", "--check", "-c"])
            .arg(fixture(file))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in expected {
            assert!(stdout.contains(line), "{file}: no {line:?} in\n{stdout}");
        }
    }
}

#[test]
fn an_unknown_measurement_schema_is_refused_naming_the_probe() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blipp.json");
    let unknown = "http://unis.crest.iu.edu/schema/blippmeasurements/20130429/traceroute";
    std::fs::write(
        &path,
        probes(json!({"trace": {"$schema": unknown, "address": "127.0.0.1"}})).to_string(),
    )
    .unwrap();
    let out = Command::new(agent_bin("blippd"))
        .args(["--ini", "none", "--node-info", "none", "--check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/properties/configurations/probes/trace/$schema")
            && err.contains("a measurement schema blipp has a preset for (iperf, owping, ping)"),
        "{err}"
    );
}

#[test]
fn the_ping_preset_pings_loopback_unprivileged() {
    if !require_root("the ping preset test (network namespace)")
        || !require_tool("ip", "the ping preset test")
        || !require_tool("ping", "the ping preset test")
    {
        return;
    }
    let ns = loopback_ns("ping");
    let samples = blippd_in(
        &ns,
        &probes(json!({"p": {"$schema": PING, "address": "127.0.0.1"}})),
        &["--once"],
    );
    let rtt = of(&samples, "ps:tools:blipp:linux:net:ping:rtt");
    assert_eq!(rtt.len(), 1, "{samples:?}");
    assert!(rtt[0]["value"].as_f64().unwrap() > 0.0, "{rtt:?}");
    assert_eq!(rtt[0]["source"], "command");
    // The preset's `-t` is the TTL the echo request leaves with, which
    // loopback hands back unchanged in the reply's.
    let ttl = of(&samples, "ps:tools:blipp:linux:net:ping:ttl");
    assert_eq!(ttl.len(), 1, "{samples:?}");
    assert_eq!(ttl[0]["value"], 64);
}

/// An `iperf3 -s` inside a namespace, killed on drop.
struct IperfServer(Child);

impl IperfServer {
    /// Starts it and returns once it says it listens.
    fn start(ns: &NetNs, port: u16) -> Self {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "iperf3", "-s", "--forceflush"])
            .args(["--bind", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let server = Self(child);
        let listening = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("Server listening"));
        assert!(listening, "iperf3 -s exited without listening");
        server
    }
}

impl Drop for IperfServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_iperf_preset_measures_a_real_iperf3_server() {
    if !require_root("the iperf preset test (network namespace)")
        || !require_tool("ip", "the iperf preset test")
        || !require_tool("iperf3", "the iperf preset test")
    {
        return;
    }
    let ns = loopback_ns("iperf");
    let _server = IperfServer::start(&ns, 5231);
    let samples = blippd_in(
        &ns,
        &probes(json!({"t": {"$schema": IPERF, "--client": "127.0.0.1",
                              "--port": 5231, "--time": 1}})),
        &["--once"],
    );
    let bw = of(&samples, "ps:tools:blipp:linux:net:iperf:bandwidth");
    assert_eq!(bw.len(), 1, "{samples:?}");
    // Loopback moves far more than 10 Mbit/s even on a loaded machine.
    assert!(bw[0]["value"].as_f64().unwrap() > 1e7, "{bw:?}");
}

#[test]
fn json_probe_reads_a_real_iperf3_json_report() {
    if !require_root("the json_probe iperf3 test (network namespace)")
        || !require_tool("ip", "the json_probe iperf3 test")
        || !require_tool("iperf3", "the json_probe iperf3 test")
    {
        return;
    }
    let ns = loopback_ns("json");
    let _server = IperfServer::start(&ns, 5232);
    // The original's json_probe value by default (the intervals' mean),
    // and values of its own.
    let samples = blippd_in(
        &ns,
        &probes(json!({"t": {"probe_module": "json_probe",
            "command": "iperf3 -J -c $address -p 5232 -t 2", "address": "127.0.0.1",
            "command_timeout": 20,
            "values": {
                "bandwidth": {"path": "/intervals/*/sum/bits_per_second", "aggregate": "mean"},
                "received": "/end/sum_received/bits_per_second",
                "intervals": {"path": "/intervals/*", "aggregate": "count"},
                "error": "/error"},
            "eventTypes": {
                "bandwidth": "ps:tools:blipp:linux:net:iperf:bandwidth",
                "received": "ps:tools:blipp:linux:net:iperf:received",
                "intervals": "ps:tools:blipp:linux:net:iperf:intervals",
                "error": "ps:tools:blipp:linux:net:iperf:error"}}})),
        &["--once"],
    );
    let bw = of(&samples, "ps:tools:blipp:linux:net:iperf:bandwidth");
    assert_eq!(bw.len(), 1, "{samples:?}");
    assert!(bw[0]["value"].as_f64().unwrap() > 1e7, "{bw:?}");
    assert_eq!(bw[0]["source"], "command");
    let received = of(&samples, "ps:tools:blipp:linux:net:iperf:received");
    assert!(received[0]["value"].as_f64().unwrap() > 1e7, "{received:?}");
    // Two seconds, one interval a second.
    let intervals = of(&samples, "ps:tools:blipp:linux:net:iperf:intervals");
    assert_eq!(intervals[0]["value"], 2, "{intervals:?}");
    // A successful run has no `error` member: no sample, not an empty one.
    assert!(of(&samples, "ps:tools:blipp:linux:net:iperf:error").is_empty());
}

#[test]
fn dummy_probes_under_simple_avoid_wait_their_duration_side_by_side() {
    // Four probes whose runs take 0.9 s each second. Side by side, off
    // the runtime's two workers, each runs two or three times in 3 s
    // (9 to 12 runs); one after another they would manage at most four.
    let probe = json!({"probe_module": "dummy", "resources": [{"ref": "link"}],
        "collection_schedule": "adaptive.simple_avoid",
        "schedule_params": {"every": 1, "duration": 0.9, "num_to_schedule": 3, "max_wait": 0.1}});
    let samples = blippd_samples(
        &probes(json!({"a": probe, "b": probe, "c": probe, "d": probe})),
        &["--duration", "3"],
    );
    let runs = of(&samples, "ps:testing:dummy");
    assert!(runs.len() >= 7, "{} runs: {samples:?}", runs.len());
    assert!(runs.iter().all(|s| s["value"] == 1), "{runs:?}");
}
