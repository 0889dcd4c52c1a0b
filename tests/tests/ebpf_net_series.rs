//! The network counters counted by eBPF keep /proc's cumulative origin, so
//! that a series in the MS (one mid, whatever the source) never falls back
//! to zero: across a restart of blippd, a fallback to /proc and back, and a
//! restart of the probe.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::net::UdpSocket;
use std::path::Path;

use blipp_tests::daemon::{Blippd, blippcmd, wait_for};
use blipp_tests::{blippd_samples, json_lines, require_root};
use serde_json::{Value, json};

const BYTES_IN: &str = "ps:tools:blipp:linux:network:utilization:bytes:in";

fn config(data_file: Option<&Path>) -> Value {
    let mut net = json!({"probe_module": "net", "interfaces": ["lo"],
                         "schedule_params": {"every": 0.2}});
    if let Some(f) = data_file {
        net["data_file"] = json!(f.display().to_string());
    }
    json!({"properties": {"configurations": {"probes": {"net": net}}}})
}

/// Some loopback traffic, so that the counters move between runs.
fn traffic() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..50 {
        tx.send_to(&[7u8; 1000], rx.local_addr().unwrap()).unwrap();
    }
}

/// `lo`'s bytes in, in order, with their source.
fn lo_bytes_in(samples: &[Value]) -> Vec<(u64, String)> {
    samples
        .iter()
        .filter(|s| s["subject"] == "port:lo" && s["eventType"] == BYTES_IN)
        .map(|s| {
            (
                s["value"].as_u64().unwrap(),
                s["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn run(mode: &str) -> Vec<(u64, String)> {
    let samples = blippd_samples(&config(None), &["--mode", mode, "--duration", "0.7"]);
    let v = lo_bytes_in(&samples);
    assert!(!v.is_empty(), "{mode}: no bytes in for lo: {samples:?}");
    assert!(v.iter().all(|(_, s)| s == mode), "{mode}: {v:?}");
    v
}

fn assert_monotonic(values: &[u64], what: &str) {
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "{what} goes back: {values:?}"
    );
}

#[test]
fn the_series_continues_across_restarts_and_a_fallback_to_proc() {
    if !require_root("blippd's eBPF network programs") {
        return;
    }
    let mut series = Vec::new();
    for mode in ["ebpf", "proc", "ebpf"] {
        traffic();
        series.extend(run(mode).into_iter().map(|(v, _)| v));
    }
    assert_monotonic(&series, "lo's bytes in over ebpf, proc, ebpf runs");
}

#[test]
fn the_series_continues_across_a_restart_of_the_probe() {
    if !require_root("blippd's eBPF network programs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("net.jsonl");
    let cfg = dir.path().join("blipp.json");
    std::fs::write(&cfg, config(Some(&data)).to_string()).unwrap();
    let socket = dir.path().join("ctl.sock");
    let blippd = Blippd::start(
        &cfg,
        &[
            "--mode",
            "ebpf",
            "--control-socket",
            socket.to_str().unwrap(),
        ],
        &dir.path().join("run.log"),
    );
    let seen = || {
        lo_bytes_in(&json_lines(
            &std::fs::read_to_string(&data).unwrap_or_default(),
        ))
    };
    wait_for(20, "three samples", || blippd.log(), || seen().len() >= 3);
    traffic();
    blippcmd(&socket, &["probe", "restart", "net"]);
    let before = seen().len();
    traffic();
    wait_for(
        20,
        "three samples after the restart",
        || blippd.log(),
        || seen().len() >= before + 3,
    );
    blippd.stop();
    let all = seen();
    assert!(all.iter().all(|(_, s)| s == "ebpf"), "{all:?}");
    let values: Vec<u64> = all.iter().map(|(v, _)| *v).collect();
    assert_monotonic(&values, "lo's bytes in across a restart of the probe");
}
