//! Aggregation end to end: the MS receives only a probe's window summaries
//! while its data file keeps every raw sample, and the summaries equal
//! what the raw samples say.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::BTreeMap;

use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::json_lines;
use blipp_tests::unis_scenario::{config, server};
use blipp_tests::unis_server::UnisServer;
use serde_json::{Value, json};

const USER: &str = "ps:tools:blipp:linux:cpu:utilization:user";

/// The MS's points per event type.
fn ms_points(server: &UnisServer) -> BTreeMap<String, Vec<Value>> {
    let data = server.data();
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for md in server.records("metadata") {
        if let Some(points) = data.get(md["id"].as_str().unwrap()) {
            out.entry(md["eventType"].as_str().unwrap().to_owned())
                .or_default()
                .extend(points.iter().cloned());
        }
    }
    out
}

#[test]
fn the_ms_gets_summaries_and_the_data_file_every_sample() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cpu.jsonl");
    let cfg = config(
        dir.path(),
        &server.url(),
        &json!({"properties": {"configurations": {"probes": {"cpu": {
            "probe_module": "cpu",
            "schedule_params": {"every": 0.5},
            "data_file": data,
            "aggregate": {
                "window": {"collections": 4},
                "summaries": [{"match": USER, "stats": ["max", "mean", "count"]}],
                "to": ["ms"]
            }
        }}}}}),
    );
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run.log"));
    wait_for(
        60,
        "three windows of cpu summaries in the MS",
        || blippd.log(),
        || {
            ms_points(&server)
                .get(&format!("{USER}:max"))
                .is_some_and(|p| p.len() >= 3)
        },
    );
    let log = blippd.stop();
    let ms = ms_points(&server);
    // Only summaries reached the MS, and only of the matched series.
    let types: Vec<&String> = ms.keys().collect();
    assert_eq!(
        types,
        [
            &format!("{USER}:count"),
            &format!("{USER}:max"),
            &format!("{USER}:mean")
        ],
        "{log}"
    );
    // The data file has every raw sample, summaries none.
    let raw = json_lines(&std::fs::read_to_string(&data).unwrap());
    assert!(
        raw.iter()
            .all(|s| !s["eventType"].as_str().unwrap().ends_with(":max"))
    );
    let user: Vec<(u64, f64)> = raw
        .iter()
        .filter(|s| s["eventType"] == USER)
        .map(|s| (s["ts"].as_u64().unwrap(), s["value"].as_f64().unwrap()))
        .collect();
    // Each summary is the max of the 4 raw values of its window, whose
    // last collection's time it carries (the first window: the first 4).
    let max = &ms[&format!("{USER}:max")];
    let counts = &ms[&format!("{USER}:count")];
    let mut windows: Vec<(u64, f64)> = max
        .iter()
        .map(|p| (p["ts"].as_u64().unwrap(), p["value"].as_f64().unwrap()))
        .collect();
    windows.sort_by_key(|w| w.0);
    for (ts, value) in &windows {
        let end = user
            .iter()
            .position(|(t, _)| t == ts)
            .unwrap_or_else(|| panic!("no raw sample at the summary's time {ts}: {user:?}"));
        let start = end + 1 - 4;
        let want = user[start..=end]
            .iter()
            .map(|(_, v)| *v)
            .fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(*value, want, "window ending at {ts}");
    }
    assert!(counts.iter().all(|p| p["value"].as_u64().unwrap() <= 4));
}
