//! `data_file_format: original`: the original BLiPP's data file lines,
//! `ts=<µs> event=<type> mid=<mid> value=<v>`, one per sample the MS
//! accepted, with the mid it is stored under; without an MS, `subject=`
//! stands where `mid=` would.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::{BTreeMap, BTreeSet};

use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::run_blippd;
use blipp_tests::unis_scenario::{config, server};
use serde_json::json;

/// The `key=value` words of a line.
fn words(line: &str) -> BTreeMap<&str, &str> {
    line.split(' ').filter_map(|w| w.split_once('=')).collect()
}

#[test]
fn lines_carry_the_mids_the_ms_stores_the_samples_under() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mem.log");
    let cfg = config(
        dir.path(),
        &server.url(),
        &json!({"properties": {"configurations": {"probes": {"mem": {
            "probe_module": "mem",
            "data_file": data,
            "data_file_format": "original"
        }}}}}),
    );
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run.log"));
    let points = || -> usize { server.data().values().map(Vec::len).sum() };
    wait_for(
        60,
        "three collections in the MS",
        || blippd.log(),
        || {
            let mids = server.records("metadata").len();
            mids > 0 && points() >= 3 * mids
        },
    );
    let log = blippd.stop();
    let text = std::fs::read_to_string(&data).unwrap();
    let metadata: BTreeMap<String, String> = server
        .records("metadata")
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m["eventType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut seen = BTreeSet::new();
    for line in text.lines() {
        let w = words(line);
        assert_eq!(
            w.keys().copied().collect::<Vec<_>>(),
            ["event", "mid", "ts", "value"],
            "{line}"
        );
        assert_eq!(
            metadata.get(w["mid"]).map(String::as_str),
            Some(w["event"]),
            "{line}"
        );
        assert!(w["value"].parse::<f64>().is_ok(), "{line}");
        // Once each: no sample written twice.
        assert!(
            seen.insert((w["mid"].to_owned(), w["ts"].to_owned())),
            "{line}"
        );
    }
    // Every point the MS holds is a line, and no line is missing from it.
    assert_eq!(seen.len(), points(), "{log}");
}

#[test]
fn without_an_ms_lines_name_the_subject() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mem.log");
    let out = run_blippd(
        dir.path(),
        &json!({"properties": {"configurations": {"probes": {"mem": {
            "probe_module": "mem",
            "data_file": data,
            "data_file_format": "original"
        }}}}})
        .to_string(),
        &["--once"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&data).unwrap();
    assert!(text.lines().count() > 3, "{text}");
    for line in text.lines() {
        let w = words(line);
        assert_eq!(
            w.keys().copied().collect::<Vec<_>>(),
            ["event", "subject", "ts", "value"],
            "{line}"
        );
        assert_eq!(w["subject"], "node", "{line}");
        assert!(
            w["event"].starts_with("ps:tools:blipp:linux:memory:"),
            "{line}"
        );
    }
}
