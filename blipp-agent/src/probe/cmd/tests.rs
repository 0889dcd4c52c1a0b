use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::*;
use crate::probe::testing;

fn probe(options: &Json) -> Box<dyn Probe> {
    testing::build("cmd", options, Path::new("/proc"))
}

fn try_probe(options: &Json) -> Result<Built, ProbeError> {
    testing::try_build("cmd", options, Path::new("/proc"))
}

fn script(dir: &Path, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("probe.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Whether the command user may open ICMP datagram sockets, which is how
/// ping works without CAP_NET_RAW.
fn command_user_may_ping() -> bool {
    // SAFETY: geteuid and getegid have no preconditions.
    let gid = if unsafe { libc::geteuid() } == 0 {
        crate::source::command::sandbox::current().user.gid
    } else {
        unsafe { libc::getegid() }
    };
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    let bounds: Vec<u32> = range
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    (bounds[0]..=bounds[1]).contains(&gid)
}

#[test]
fn ping_as_the_original_configured_it() {
    // The original's sample configuration, pointed at loopback.
    let mut p = probe(&json!({
        "command": "ping -c 1 $-W $address",
        "address": "127.0.0.1",
        "-W": 2,
        "regex": "ttl=(?P<ttl>\\d+).*time=(?P<rtt>\\d+\\.\\d+) ",
        "eventTypes": {"ttl": "ps:tools:blipp:linux:net:ping:ttl",
                       "rtt": "ps:tools:blipp:linux:net:ping:rtt"}
    }));
    assert!(
        p.blocks(),
        "the arbiter must not run it on a runtime worker"
    );
    if !command_user_may_ping() {
        // ping starts (its file capability is not refused) but, without
        // CAP_NET_RAW, cannot open a socket: the command is unprivileged.
        let mut out = Vec::new();
        let e = p
            .collect(Timestamp(1_700_000_000_000_000), &mut out)
            .unwrap_err();
        eprintln!(
            "net.ipv4.ping_group_range excludes the command user's group: ping fails as expected ({e})"
        );
        return;
    }
    let out = testing::collect(p.as_mut(), 0.0);
    assert_eq!(
        testing::int(&out, "node", "ps:tools:blipp:linux:net:ping:ttl"),
        64
    );
    let rtt = testing::float(&out, "node", "ps:tools:blipp:linux:net:ping:rtt");
    assert!(rtt > 0.0 && rtt < 1000.0, "loopback rtt {rtt} ms");
    assert!(out.iter().all(|s| s.source == Source::Command));
}

#[test]
fn substitution_and_numbers() {
    let mut p = probe(&json!({
        "command": "echo load $x $-f $-q unknown $$y",
        "x": 1.5, "-f": "7", "-q": false,
        "regex": "^load (?P<a>\\S+) -f (?P<b>\\d+) (?P<c>\\w+) (?P<d>\\S+)$",
        "eventTypes": {"a": "ps:tools:blipp:test:a", "b": "ps:tools:blipp:test:b",
                       "c": "ps:tools:blipp:test:c", "d": "ps:tools:blipp:test:d"}
    }));
    let out = testing::collect(p.as_mut(), 0.0);
    assert_eq!(testing::float(&out, "node", "ps:tools:blipp:test:a"), 1.5);
    assert_eq!(testing::int(&out, "node", "ps:tools:blipp:test:b"), 7);
    // "unknown" and "$y" are not numbers: not reported.
    assert!(testing::find(&out, "node", "ps:tools:blipp:test:c").is_none());
    assert!(testing::find(&out, "node", "ps:tools:blipp:test:d").is_none());
    assert_eq!(out.len(), 2);
}

#[test]
fn multi_line_output_and_dot_matching_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let s = script(
        dir.path(),
        "printf 'first 1\\nsecond line\\nlast -2.5e1\\n'",
    );
    let mut p = probe(&json!({
        "command": s,
        "regex": "^first (?P<one>\\d+)$.*^last (?P<two>\\S+)$",
        "eventTypes": {"one": "ps:tools:blipp:test:one", "two": "ps:tools:blipp:test:two"}
    }));
    let out = testing::collect(p.as_mut(), 0.0);
    assert_eq!(testing::int(&out, "node", "ps:tools:blipp:test:one"), 1);
    assert_eq!(
        testing::float(&out, "node", "ps:tools:blipp:test:two"),
        -25.0
    );
}

#[test]
fn timeout_fails_the_collection_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let s = script(dir.path(), "echo value 1; sleep 916.25");
    let mut p = probe(&json!({
        "command": s, "command_timeout": 0.5,
        "regex": "value (?P<v>\\d+)", "eventTypes": {"v": "ps:tools:blipp:test:v"}
    }));
    let started = Instant::now();
    let mut out = Vec::new();
    let e = p.collect(Timestamp(1), &mut out).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(e.to_string().contains("timeout"), "{e}");
    assert!(
        out.is_empty(),
        "a killed command's partial output is not reported"
    );
}

#[test]
fn no_output_and_no_match_are_errors() {
    let mut p = probe(&json!({
        "command": "true", "regex": "(?P<v>\\d+)", "eventTypes": {"v": "ps:tools:blipp:test:v"}
    }));
    let e = p.collect(Timestamp(1), &mut Vec::new()).unwrap_err();
    assert!(
        matches!(e, ProbeError::Cmd(CmdError::NoOutput { .. })),
        "{e}"
    );
    let mut p = probe(&json!({
        "command": "echo no digits", "regex": "(?P<v>\\d+)", "eventTypes": {"v": "ps:tools:blipp:test:v"}
    }));
    let e = p.collect(Timestamp(1), &mut Vec::new()).unwrap_err();
    assert!(
        matches!(e, ProbeError::Cmd(CmdError::NoMatch { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("no digits"), "{e}");
}

#[test]
fn the_original_module_name_works() {
    let mut p = testing::build(
        "cmd_line_probe",
        &json!({"command": "echo 42", "regex": "(?P<v>\\d+)", "eventTypes": {"v": "ps:tools:blipp:test:v"}}),
        Path::new("/proc"),
    );
    let out = testing::collect(p.as_mut(), 0.0);
    assert_eq!(testing::int(&out, "node", "ps:tools:blipp:test:v"), 42);
}

#[test]
fn bad_configurations_are_refused_with_the_field() {
    let base = json!({"command": "echo 1", "regex": "(?P<v>\\d+)", "eventTypes": {"v": "e:v"}});
    let with = |k: &str, v: Json| {
        let mut o = base.clone();
        o[k] = v;
        o
    };
    for (options, field) in [
        (with("eventTypes", json!({"w": "e:w"})), "/eventTypes"),
        (with("regex", json!("(?P<v>\\d+")), "/regex"),
        (with("command", json!("echo 'x")), "/command"),
        (with("command", json!("$nothing")), "/command"),
        (with("environment", json!({"1X": "a"})), "/environment"),
    ] {
        let e = try_probe(&options).err().expect("refused").to_string();
        assert!(e.contains(&format!("/probes/cmd{field}")), "{options}: {e}");
    }
}
