//! The original BLiPP's sample configurations (`config/blipp_default.json`
//! and `blipp/sample_config/*.json`, as fixtures of the same shape in
//! `tests/data/original/`) run against the UNIS/MS test server: each
//! registers, and the samples it asks for reach the MS. Their UNIS and MS
//! addresses are pointed at the test server, their files at the test's
//! own; nothing else is changed.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use blipp_tests::netns::NetNs;
use blipp_tests::unis_server::{Options, UnisServer};
use blipp_tests::{agent_bin, real_schemas, require_root};
use serde_json::Value;

/// The event types of the series that received data in `server`, per
/// probe (metadata -> measurement -> the probe's name).
fn delivered(server: &UnisServer) -> BTreeMap<String, BTreeSet<String>> {
    let measurements = server.records("measurements");
    let data = server.data();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for md in server.records("metadata") {
        let Some(points) = data.get(md["id"].as_str().unwrap()) else {
            continue;
        };
        if points.is_empty() {
            continue;
        }
        let Some(m) = measurements
            .iter()
            .find(|m| m["selfRef"] == md["parameters"]["measurement"]["href"])
        else {
            continue;
        };
        out.entry(m["configuration"]["name"].as_str().unwrap().to_owned())
            .or_default()
            .insert(md["eventType"].as_str().unwrap().to_owned());
    }
    out
}

/// Runs `fixture` once (`--once`) in `ns` against a new test server there,
/// with `edit` applied to its text; what reached the MS.
fn run_once(
    ns: &NetNs,
    fixture: &str,
    edit: impl Fn(String) -> String,
) -> BTreeMap<String, BTreeSet<String>> {
    let schemas = real_schemas("the original's sample configurations against the test server");
    let server = UnisServer::start_in(
        ns,
        Options {
            schemas,
            ..Options::default()
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data/original")
            .join(fixture),
    )
    .unwrap();
    let text = edit(text)
        .replace("http://localhost:8888", &server.url())
        .replace("http://unis.example.org", &server.url());
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    doc["properties"]["configurations"]["spool_dir"] =
        dir.path().join("spool").display().to_string().into();
    let path = dir.path().join(fixture);
    std::fs::write(&path, doc.to_string()).unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(agent_bin("blippd"))
        .args(["--ini", "none", "--node-info", "none", "--once", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{fixture}:\n{log}");
    assert!(log.contains("registered in UNIS"), "{fixture}:\n{log}");
    delivered(&server)
}

fn has(got: &BTreeMap<String, BTreeSet<String>>, probe: &str, event_types: &[&str]) -> bool {
    got.get(probe)
        .is_some_and(|t| event_types.iter().all(|e| t.contains(*e)))
}

#[test]
fn the_originals_sample_configurations_deliver_their_samples() {
    if !require_root("a network namespace for loopback ping and the test server") {
        return;
    }
    let ns = NetNs::new("orig-samples").unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    // Unprivileged ICMP for the command user, in this namespace only.
    ns.run(|| std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647"))
        .unwrap()
        .unwrap();
    let cpu = "ps:tools:blipp:linux:cpu:utilization:user";
    let got = run_once(&ns, "blipp_default.json", |t| t);
    assert!(
        has(&got, "cpu", &[cpu])
            && has(
                &got,
                "mem",
                &["ps:tools:blipp:linux:memory:utilization:free"]
            )
            && has(
                &got,
                "net",
                &["ps:tools:blipp:linux:network:tcp:utilization:segments:in"]
            ),
        "blipp_default.json: {got:#?}"
    );
    for (fixture, probe) in [
        ("justcputestconfig.json", "just_cpu"),
        ("minimalconfig.json", "minimal_cpu"),
    ] {
        let got = run_once(&ns, fixture, |t| t);
        assert!(has(&got, probe, &[cpu]), "{fixture}: {got:#?}");
    }
    let got = run_once(&ns, "cmdlinetestconfig.json", |t| t);
    assert!(
        has(
            &got,
            "ping_loopback",
            &[
                "ps:tools:blipp:linux:net:ping:ttl",
                "ps:tools:blipp:linux:net:ping:rtt"
            ]
        ),
        "cmdlinetestconfig.json: {got:#?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("nl.log");
    std::fs::write(
        &log,
        "ts=2026-12-01T10:00:00.000000Z event=transfer.end level=Info VAL=42.5\n",
    )
    .unwrap();
    let got = run_once(&ns, "netloggerconfig.json", |t| {
        t.replace("/tmp/nl.log", log.to_str().unwrap())
    });
    assert!(
        got.get("nl").is_some_and(|t| !t.is_empty()),
        "netloggerconfig.json: {got:#?}"
    );
}
