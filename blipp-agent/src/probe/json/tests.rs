use std::path::Path as FsPath;

use serde_json::{Value as Json, json};

use super::*;
use crate::probe::testing;
use crate::sample::Value;

fn script(dir: &FsPath, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("probe.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A probe printing `printed` (single-quoted shell text).
fn printing(module: &str, printed: &str, options: Json) -> (tempfile::TempDir, Box<dyn Probe>) {
    let dir = tempfile::tempdir().unwrap();
    let s = script(dir.path(), &format!("printf '%s' '{printed}'"));
    let mut o = options;
    o["command"] = s.into();
    let p = testing::build(module, &o, FsPath::new("/proc"));
    (dir, p)
}

#[test]
fn values_by_pointer_and_aggregate() {
    let (_d, mut p) = printing(
        "json_probe",
        r#"{"intervals":[{"sum":{"bits_per_second":1e9}},{"sum":{"bits_per_second":3e9}}],"end":{"sum_sent":{"retransmits":7}},"state":"up"}"#,
        json!({
            "values": {"bw": {"path": "/intervals/*/sum/bits_per_second", "aggregate": "mean"},
                       "n": {"path": "/intervals/*", "aggregate": "count"},
                       "retr": "/end/sum_sent/retransmits",
                       "state": "/state",
                       "missing": "/end/sum_received/bits_per_second"},
            "eventTypes": {"bw": "e:bw", "n": "e:n", "retr": "e:retr", "state": "e:state", "missing": "e:missing"}
        }),
    );
    assert!(p.blocks());
    let out = testing::collect(p.as_mut(), 0.0);
    assert_eq!(testing::float(&out, "node", "e:bw"), 2e9);
    assert_eq!(testing::int(&out, "node", "e:n"), 2);
    assert_eq!(testing::int(&out, "node", "e:retr"), 7);
    assert_eq!(
        testing::find(&out, "node", "e:state").unwrap().value,
        Value::Text(Name::from("up"))
    );
    // Not in the document: unknown, not 0.
    assert!(testing::find(&out, "node", "e:missing").is_none());
    assert_eq!(out.len(), 4);
    assert!(out.iter().all(|s| s.source == Source::Command));
}

#[test]
fn output_that_is_not_json_is_one_error() {
    let (_d, mut p) = printing(
        "json_probe",
        r#"{"a": 1,"#,
        json!({"values": {"a": "/a"}, "eventTypes": {"a": "e:a"}}),
    );
    let e = p.collect(Timestamp(1), &mut Vec::new()).unwrap_err();
    assert!(
        matches!(e, ProbeError::Json(JsonError::NotJson { .. })),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("EOF while parsing a value at line 1 column 8"),
        "{e}"
    );
}

#[test]
fn the_originals_iperf_report_inside_text_output() {
    // What the original json_probe read: iperf3's text, with the server's
    // JSON report between two markers; its one value is the default.
    let printed = "Connecting to host 127.0.0.1, port 5201\n[  5] local ...\n\nServer JSON output:\n{\"intervals\": [{\"sum\": {\"bits_per_second\": 4.0}}, {\"sum\": {\"bits_per_second\": 6.0}}]}\n\niperf Done.\n";
    let (_d, mut p) = printing("json_probe", printed, json!({}));
    let out = testing::collect(p.as_mut(), 0.0);
    assert_eq!(
        testing::float(&out, "node", "ps:tools:blipp:linux:net:iperf:bandwidth"),
        5.0
    );
    assert_eq!(out.len(), 1);
}

#[test]
fn ceph_probe_defaults_to_the_originals_values() {
    let printed = r#"{"health":{"health":{"health_services":[{"mons":[{"name":"a","kb_total":100,"kb_used":30,"kb_avail":70,"health":"HEALTH_OK"}]}]}}}"#;
    let (_d, mut p) = printing("ceph_probe", printed, json!({}));
    let out = testing::collect(p.as_mut(), 0.0);
    assert_eq!(
        testing::find(&out, "node", "ps:tools:blipp:linux:ceph:status")
            .unwrap()
            .value,
        Value::Text(Name::from("HEALTH_OK"))
    );
    assert_eq!(
        testing::int(&out, "node", "ps:tools:blipp:linux:ceph:bytes:used"),
        30
    );
    assert_eq!(
        testing::int(&out, "node", "ps:tools:blipp:linux:ceph:bytes:free"),
        70
    );
}

#[test]
fn ceph_probe_runs_ceph_unless_told_otherwise() {
    let built = testing::try_build("ceph_probe", &json!({}), FsPath::new("/proc")).unwrap();
    let mut probe = built.probe;
    let e = probe.collect(Timestamp(1), &mut Vec::new()).unwrap_err();
    // Debian's test hosts have no ceph: the run fails naming it.
    assert!(e.to_string().contains("ceph"), "{e}");
}

#[test]
fn hostile_output_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let s = script(dir.path(), "yes '[[[[[[[[' | head -c 10000000");
    let mut p = testing::build(
        "json_probe",
        &json!({"command": s, "output_limit": 4096,
                "values": {"a": "/a"}, "eventTypes": {"a": "e:a"}}),
        FsPath::new("/proc"),
    );
    let e = p.collect(Timestamp(1), &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("more than 4096 bytes"), "{e}");
    // Deep nesting within the limit: serde_json's recursion limit refuses
    // it instead of exhausting the stack.
    let deep = "[".repeat(3000);
    let (_d, mut p) = printing(
        "json_probe",
        &deep,
        json!({"values": {"a": "/a"}, "eventTypes": {"a": "e:a"}}),
    );
    let e = p.collect(Timestamp(1), &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("recursion limit exceeded"), "{e}");
}

#[test]
fn bad_configurations_are_refused_with_the_field() {
    let base = json!({"command": "echo {}", "values": {"v": "/v"}, "eventTypes": {"v": "e:v"}});
    let with = |k: &str, v: Json| {
        let mut o = base.clone();
        o[k] = v;
        o
    };
    for (options, field, expected) in [
        (
            with("values", json!({"v": "v"})),
            "/values/v",
            "a JSON pointer: a JSON pointer starts with /",
        ),
        (
            with("values", json!({"v": "/a~5"})),
            "/values/v",
            "~ must be followed by",
        ),
        (
            with("values", json!({"v": "/a/*/b"})),
            "/values/v",
            "`aggregate`",
        ),
        (
            with(
                "values",
                json!({"v": {"path": "/a/*", "aggregate": "median"}}),
            ),
            "/values/v/aggregate",
            "one of [\"mean\"",
        ),
        (
            with("eventTypes", json!({"w": "e:w"})),
            "/eventTypes/w",
            "the name of one of",
        ),
        (
            with("eventTypes", json!({})),
            "/eventTypes",
            "an event type for the value \"v\"",
        ),
        (with("values", json!({})), "/values", "less than 1 property"),
    ] {
        let e = testing::try_build("json_probe", &options, FsPath::new("/proc"))
            .err()
            .expect("refused")
            .to_string();
        assert!(
            e.contains(&format!("/probes/json_probe{field}:")),
            "{options}: {e}"
        );
        assert!(e.contains(expected), "{options}: {e}");
    }
    let e = testing::try_build(
        "json_probe",
        &json!({"values": {"v": "/v"}, "eventTypes": {"v": "e:v"}}),
        FsPath::new("/proc"),
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(e.contains("command"), "a json_probe without a command: {e}");
}
