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

#[test]
fn a_list_of_regexes_each_matched() {
    let mut p = probe(&json!({
        "command": "echo rx 10 tx 20",
        "regex": ["rx (?P<rx>\\d+)", "tx (?P<tx>\\d+)", "never (?P<rx>\\d+)"],
        "eventTypes": {"rx": "ps:tools:blipp:test:rx", "tx": "ps:tools:blipp:test:tx"}
    }));
    let out = testing::collect(p.as_mut(), 0.0);
    assert_eq!(testing::int(&out, "node", "ps:tools:blipp:test:rx"), 10);
    assert_eq!(testing::int(&out, "node", "ps:tools:blipp:test:tx"), 20);
    assert_eq!(out.len(), 2);
}

#[test]
fn every_match_a_series_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let s = script(
        dir.path(),
        "printf 'eth0 rx 100\\nlo rx 7\\neth0 rx 5\\nwlan 0 rx 3\\nbad rx x\\n'",
    );
    let mut p = probe(&json!({
        "command": s, "matches": "all",
        "regex": "^(?P<subject>.+?) rx (?P<rx>\\S+)$",
        "eventTypes": {"rx": "ps:tools:blipp:test:rx"}
    }));
    let out = testing::collect(p.as_mut(), 0.0);
    assert_eq!(
        testing::int(&out, "cmd:eth0", "ps:tools:blipp:test:rx"),
        100
    );
    assert_eq!(testing::int(&out, "cmd:lo", "ps:tools:blipp:test:rx"), 7);
    assert_eq!(
        testing::int(&out, "cmd:wlan_0", "ps:tools:blipp:test:rx"),
        3
    );
    // The second eth0 line is not a second value of the same series, and
    // "x" is not a number.
    assert_eq!(out.len(), 3, "{out:?}");
    // max_matches bounds a collection.
    let mut p = probe(&json!({
        "command": s, "matches": "all", "max_matches": 2,
        "regex": "^(?P<subject>\\S+) rx (?P<rx>\\d+)$",
        "eventTypes": {"rx": "ps:tools:blipp:test:rx"}
    }));
    let out = testing::collect(p.as_mut(), 0.0);
    assert_eq!(out.len(), 2, "{out:?}");
}

#[test]
fn subjects_are_bounded_over_the_probes_life() {
    let dir = tempfile::tempdir().unwrap();
    let s = script(dir.path(), "seq 1 1100 | sed 's/^/n/; s/$/ 1/'");
    let mut p = probe(&json!({
        "command": s, "matches": "all", "max_matches": 4096,
        "regex": "^(?P<subject>\\S+) (?P<v>\\d+)$",
        "eventTypes": {"v": "ps:tools:blipp:test:v"}
    }));
    let out = testing::collect(p.as_mut(), 0.0);
    assert_eq!(out.len(), MAX_SUBJECTS);
    assert!(testing::find(&out, "cmd:n1024", "ps:tools:blipp:test:v").is_some());
    assert!(testing::find(&out, "cmd:n1025", "ps:tools:blipp:test:v").is_none());
}

#[test]
fn a_pipeline_without_a_shell() {
    let mut p = probe(&json!({
        "pipeline": ["printf 'a 1\\nb 2\\nc 3\\n'", "grep $pattern", "tr a-z A-Z"],
        "pattern": "b",
        "regex": "^B (?P<v>\\d+)$",
        "eventTypes": {"v": "ps:tools:blipp:test:v"}
    }));
    let out = testing::collect(p.as_mut(), 0.0);
    assert_eq!(testing::int(&out, "node", "ps:tools:blipp:test:v"), 2);
    // `|` is a word like any other, not a pipe.
    let mut p = probe(&json!({
        "command": "echo 5 | grep 6",
        "regex": "^(?P<v>\\d+) \\| grep 6$",
        "eventTypes": {"v": "ps:tools:blipp:test:v"}
    }));
    let out = testing::collect(p.as_mut(), 0.0);
    assert_eq!(testing::int(&out, "node", "ps:tools:blipp:test:v"), 5);
}

#[test]
fn values_transformed() {
    let mut p = probe(&json!({
        "command": "echo time=250 size=3 temp=20",
        "regex": "time=(?P<t>\\d+) size=(?P<s>\\d+) temp=(?P<c>\\d+)",
        "eventTypes": {
            "t": {"eventType": "ps:tools:blipp:test:t", "unit": "ms"},
            "s": {"eventType": "ps:tools:blipp:test:s", "unit": "KB", "scale": 2},
            "c": {"eventType": "ps:tools:blipp:test:k", "offset": 273.15}
        }
    }));
    let out = testing::collect(p.as_mut(), 0.0);
    assert_eq!(testing::float(&out, "node", "ps:tools:blipp:test:t"), 0.25);
    assert_eq!(testing::int(&out, "node", "ps:tools:blipp:test:s"), 6144);
    assert_eq!(
        testing::float(&out, "node", "ps:tools:blipp:test:k"),
        293.15
    );
}

#[test]
fn costly_or_contradictory_configurations_are_refused() {
    let many_groups: String = (0..33).map(|i| format!("(?P<g{i}>a)")).collect();
    for (options, field, expected) in [
        (
            json!({"command": "echo 1", "regex": many_groups, "eventTypes": {"g0": "e"}}),
            "/regex",
            "at most 32 groups, not 33",
        ),
        (
            json!({"command": "echo 1", "regex": ["(?P<v>1)", many_groups], "eventTypes": {"v": "e"}}),
            "/regex/1",
            "at most 32 groups",
        ),
        (
            json!({"command": "echo 1", "regex": "(?P<v>1)", "matches": "all", "eventTypes": {"v": "e"}}),
            "/regex",
            "(?P<subject>...)",
        ),
        (
            json!({"command": "echo 1", "pipeline": ["echo 1"], "regex": "(?P<v>1)", "eventTypes": {"v": "e"}}),
            "/pipeline",
            "not both",
        ),
        (
            json!({"pipeline": ["echo 1", "cat 'x"], "regex": "(?P<v>1)", "eventTypes": {"v": "e"}}),
            "/pipeline/1",
            "quot",
        ),
        (
            json!({"command": "echo 1", "regex": "(?P<v>1)", "eventTypes": {"v": {"eventType": "e", "unit": "Mbps"}}}),
            "/eventTypes/v",
            "a `unit` of",
        ),
        (
            json!({"command": "echo 1", "regex": "(?P<v>1)", "max_matches": 5000, "eventTypes": {"v": "e"}}),
            "/max_matches",
            "",
        ),
        (
            json!({"regex": "(?P<v>1)", "eventTypes": {"v": "e"}}),
            "/command",
            "a command line (or a `pipeline`)",
        ),
    ] {
        let e = try_probe(&options).err().expect("refused").to_string();
        assert!(
            e.contains(&format!("/probes/cmd{field}:")),
            "{options}: {e}"
        );
        assert!(e.contains(expected), "{options}: {e}");
    }
}
