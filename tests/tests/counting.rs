//! The counting probe against netfilter's own counters: blippd counts
//! packets and bytes by protocol and port in a network namespace while
//! nftables rules with the same matches count the same traffic; the
//! numbers must be equal. nftables is only the reference here: blippd
//! itself never touches the firewall, which the test checks too.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]
#![allow(clippy::print_stderr, reason = "the figures are printed for the log")]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;

use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::netns::NetNs;
use blipp_tests::{json_lines, require_root, require_tool};
use serde_json::{Value, json};

const TCP_PORT: u16 = 7422;
const UDP_PORT: u16 = 7453;

/// The last value blippd wrote for `subject`'s `event_type`, and when.
fn last(data: &Path, subject: &str, event_type: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(data).unwrap_or_default();
    json_lines(&text)
        .iter()
        .rev()
        .find(|s| s["subject"] == subject && s["eventType"] == event_type)
        .map(|s| (s["value"].as_u64().unwrap(), s["ts"].as_u64().unwrap()))
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The (packets, bytes) of the nftables counter named `name` in `ns`.
fn nft_counter(ns: &NetNs, name: &str) -> (u64, u64) {
    let out = ns
        .exec(&["nft", "-j", "list", "counter", "inet", "reference", name])
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let c = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| o.get("counter"))
        .unwrap_or_else(|| panic!("no counter {name} in {out}"));
    (c["packets"].as_u64().unwrap(), c["bytes"].as_u64().unwrap())
}

#[test]
fn counts_equal_netfilters_for_the_same_traffic() {
    if !require_root("loading eBPF programs and making network namespaces")
        || !require_tool("nft", "the nftables reference counters")
    {
        return;
    }
    let ns = NetNs::new("count").unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("counting.jsonl");
    let config = dir.path().join("blipp.json");
    std::fs::write(
        &config,
        json!({"properties": {"configurations": {"probes": {"counting": {
            "probe_module": "counting",
            "mode": "ebpf",
            "schedule_params": {"every": 1},
            "reporting_params": 1,
            "data_file": data,
            "rules": [
                {"name": "tcp-in", "protocol": "tcp", "port": TCP_PORT},
                {"name": "udp-out", "direction": "out", "protocol": "udp", "port": UDP_PORT},
                {"name": "tcp-either", "protocol": "tcp", "port": TCP_PORT, "port_of": "either"}
            ]
        }}}}})
        .to_string(),
    )
    .unwrap();
    let ruleset_before = ns.exec(&["nft", "list", "ruleset"]).unwrap();
    let log = dir.path().join("blippd.log");
    let blippd = Blippd::start_under(&["ip", "netns", "exec", ns.name()], &config, &[], &log);
    let log_of = || std::fs::read_to_string(&log).unwrap_or_default();
    // Counting starts when the probe is built: its first samples say so.
    wait_for(30, "the first counting samples", log_of, || {
        last(
            &data,
            "count:tcp-in",
            "ps:tools:blipp:linux:net:count:packets",
        )
        .is_some()
    });
    assert_eq!(
        ns.exec(&["nft", "list", "ruleset"]).unwrap(),
        ruleset_before,
        "blippd changed the firewall"
    );
    // The namespace is new and quiet: nothing counted yet.
    for name in ["count:tcp-in", "count:udp-out", "count:tcp-either"] {
        assert_eq!(
            last(&data, name, "ps:tools:blipp:linux:net:count:packets").map(|v| v.0),
            Some(0),
            "{name}"
        );
    }
    // The reference: the same matches in nftables, from now on.
    let script = format!(
        "table inet reference {{
            counter tcp_in {{}}
            counter udp_out {{}}
            counter tcp_either {{}}
            chain input {{ type filter hook input priority 0; tcp dport {TCP_PORT} counter name tcp_in; tcp dport {TCP_PORT} counter name tcp_either; tcp sport {TCP_PORT} counter name tcp_either; }}
            chain output {{ type filter hook output priority 0; udp dport {UDP_PORT} counter name udp_out; }}
        }}"
    );
    let path = dir.path().join("reference.nft");
    std::fs::write(&path, script).unwrap();
    ns.exec(&["nft", "-f", path.to_str().unwrap()]).unwrap();
    // Traffic: a TCP transfer to TCP_PORT (and its answers from it), UDP
    // datagrams to UDP_PORT, all on the namespace's loopback.
    ns.run(|| {
        let listener = TcpListener::bind(("127.0.0.1", TCP_PORT)).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            s.write_all(b"thanks").unwrap();
            got.len()
        });
        let mut c = TcpStream::connect(("127.0.0.1", TCP_PORT)).unwrap();
        c.write_all(&vec![7u8; 300_000]).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        c.read_to_end(&mut answer).unwrap();
        assert_eq!(server.join().unwrap(), 300_000);
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        for size in [1, 100, 1000, 1400] {
            udp.send_to(&vec![1u8; size], ("127.0.0.1", UDP_PORT))
                .unwrap();
        }
    })
    .unwrap();
    // Closing sockets may still send (FIN, ACK) in the background: the
    // reference is read once blippd has reported a collection after
    // netfilter's counts stopped changing.
    let mut reference = (nft_counter(&ns, "tcp_in"), nft_counter(&ns, "udp_out"));
    let mut since = now_micros();
    wait_for(30, "a collection after the traffic", log_of, || {
        let now = (nft_counter(&ns, "tcp_in"), nft_counter(&ns, "udp_out"));
        if now != reference {
            reference = now;
            since = now_micros();
            return false;
        }
        last(
            &data,
            "count:udp-out",
            "ps:tools:blipp:linux:net:count:bytes",
        )
        .is_some_and(|(_, ts)| ts > since)
    });
    let got = |name: &str, what: &str| {
        last(
            &data,
            name,
            &format!("ps:tools:blipp:linux:net:count:{what}"),
        )
        .unwrap()
        .0
    };
    let (tcp_in, udp_out) = reference;
    eprintln!(
        "nftables: tcp in {tcp_in:?}, udp out {udp_out:?}; blippd: tcp in ({}, {}), udp out ({}, {})",
        got("count:tcp-in", "packets"),
        got("count:tcp-in", "bytes"),
        got("count:udp-out", "packets"),
        got("count:udp-out", "bytes")
    );
    assert!(tcp_in.0 > 10 && udp_out.0 == 4, "{reference:?}");
    assert_eq!(
        (got("count:tcp-in", "packets"), got("count:tcp-in", "bytes")),
        (tcp_in.0, tcp_in.1),
        "TCP to {TCP_PORT}, received (blippd vs nftables)"
    );
    assert_eq!(
        (
            got("count:udp-out", "packets"),
            got("count:udp-out", "bytes")
        ),
        (udp_out.0, udp_out.1),
        "UDP to {UDP_PORT}, sent (blippd vs nftables)"
    );
    assert_eq!(
        got("count:tcp-either", "packets"),
        nft_counter(&ns, "tcp_either").0,
        "TCP from or to {TCP_PORT}, received"
    );
    drop(blippd);
}

/// The original's `counting_measurement.json` shape (a UNIS measurement
/// record running its `iptables` probe): accepted by `--check`, and run,
/// it reports the original's event type from the kernel without running
/// its `sudo iptables` command or touching the firewall.
#[test]
fn the_originals_counting_measurement_runs_without_iptables() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/original/counting_measurement.json");
    let check = std::process::Command::new(blipp_tests::agent_bin("blippd"))
        .args(["--ini", "none", "--node-info", "none", "--check", "-c"])
        .arg(&fixture)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && stdout.contains("module=iptables"),
        "{stdout}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    if !require_root("loading eBPF programs and making network namespaces")
        || !require_tool("nft", "reading the namespace's firewall")
    {
        return;
    }
    let ns = NetNs::new("count-orig").unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(blipp_tests::agent_bin("blippd"))
        .args(["--ini", "none", "--node-info", "none", "--once", "-c"])
        .arg(&fixture)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let samples = json_lines(&String::from_utf8_lossy(&out.stdout));
    let counting: Vec<&Value> = samples
        .iter()
        .filter(|s| s["eventType"] == "ps:tools:blipp:linux:net:iptables:counting")
        .collect();
    // Nothing was sent in the new namespace: a measured 0, from eBPF.
    assert_eq!(counting.len(), 1, "{samples:?}\n{log}");
    assert_eq!(counting[0]["value"], 0);
    assert_eq!(counting[0]["source"], "ebpf");
    assert!(
        log.contains("iptables command and regex are not run"),
        "{log}"
    );
    assert_eq!(ns.exec(&["nft", "list", "ruleset"]).unwrap(), "");
}
