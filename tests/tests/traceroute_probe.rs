//! The traceroute probe running the real `traceroute` (and `tracepath`),
//! unprivileged, to loopback and through a router between two network namespaces.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::process::Command;

use blipp_tests::netns::NetNs;
use blipp_tests::{agent_bin, blippd_samples, json_lines, require_root, require_tool};
use serde_json::{Value, json};

const HOPIP: &str = "ps:tools:blipp:linux:net:traceroute:hopip";
const RTT: &str = "ps:tools:blipp:linux:net:traceroute:rtt";
const HOPS: &str = "ps:tools:blipp:linux:net:traceroute:hops";

fn probes(probes: Value) -> Value {
    json!({"properties": {"configurations": {"probes": probes}}})
}

fn one<'a>(samples: &'a [Value], subject: &str, event_type: &str) -> &'a Value {
    let found: Vec<&Value> = samples
        .iter()
        .filter(|s| s["subject"] == subject && s["eventType"] == event_type)
        .collect();
    assert_eq!(found.len(), 1, "{subject} {event_type}: {samples:?}");
    &found[0]["value"]
}

#[test]
fn traceroute_to_loopback() {
    if !require_tool("traceroute", "the traceroute probe test")
        || !require_tool("tracepath", "the traceroute probe test")
    {
        return;
    }
    let samples = blippd_samples(
        &probes(json!({
            "t": {"probe_module": "traceroute_probe", "address": "127.0.0.1"},
            "p": {"probe_module": "traceroute", "command": "tracepath -n $address",
                  "address": "127.0.0.1",
                  "eventTypes": {"hopip": "tp:hopip", "rtt": "tp:rtt", "hops": "tp:hops"}}})),
        &["--once"],
    );
    assert_eq!(one(&samples, "hop:1", "tp:hopip"), "127.0.0.1");
    assert!(one(&samples, "hop:1", "tp:rtt").as_f64().unwrap() > 0.0);
    assert_eq!(one(&samples, "node", "tp:hops"), 1);
    assert_eq!(one(&samples, "hop:1", HOPIP), "127.0.0.1");
    let rtt = one(&samples, "hop:1", RTT).as_f64().unwrap();
    assert!(rtt > 0.0 && rtt < 1000.0, "{rtt}");
    assert_eq!(one(&samples, "node", HOPS), 1);
    assert!(samples.iter().all(|s| s["source"] == "command"));
}

/// `ip ARGS`, which must succeed.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn traceroute_through_a_router() {
    if !require_root("the two-hop traceroute test (network namespaces)")
        || !require_tool("ip", "the two-hop traceroute test")
        || !require_tool("traceroute", "the two-hop traceroute test")
    {
        return;
    }
    // here (10.71.1.1) -- router (10.71.1.2 | 10.71.2.1) -- there (10.71.2.2)
    let [here, router, there] = ["trh", "trr", "trt"].map(|t| NetNs::new(t).unwrap());
    ip(&[
        "link",
        "add",
        "tr-a",
        "netns",
        here.name(),
        "type",
        "veth",
        "peer",
        "name",
        "tr-b",
        "netns",
        router.name(),
    ]);
    ip(&[
        "link",
        "add",
        "tr-c",
        "netns",
        router.name(),
        "type",
        "veth",
        "peer",
        "name",
        "tr-d",
        "netns",
        there.name(),
    ]);
    for (ns, dev, addr) in [
        (&here, "tr-a", "10.71.1.1/24"),
        (&router, "tr-b", "10.71.1.2/24"),
        (&router, "tr-c", "10.71.2.1/24"),
        (&there, "tr-d", "10.71.2.2/24"),
    ] {
        ns.ip(&["addr", "add", addr, "dev", dev]).unwrap();
        ns.ip(&["link", "set", dev, "up"]).unwrap();
        ns.ip(&["link", "set", "lo", "up"]).unwrap();
    }
    router
        .run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))
        .unwrap()
        .unwrap();
    here.ip(&["route", "add", "default", "via", "10.71.1.2"])
        .unwrap();
    there
        .ip(&["route", "add", "default", "via", "10.71.2.1"])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blipp.json");
    std::fs::write(
        &path,
        probes(json!({"t": {"probe_module": "traceroute", "address": "10.71.2.2", "-q": 1}}))
            .to_string(),
    )
    .unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", here.name()])
        .arg(agent_bin("blippd"))
        .args(["--ini", "none", "--node-info", "none", "--once", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let samples = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(one(&samples, "hop:1", HOPIP), "10.71.1.2", "{log}");
    assert_eq!(one(&samples, "hop:2", HOPIP), "10.71.2.2");
    for hop in ["hop:1", "hop:2"] {
        assert!(one(&samples, hop, RTT).as_f64().unwrap() > 0.0);
    }
    assert_eq!(one(&samples, "node", HOPS), 2);
}
