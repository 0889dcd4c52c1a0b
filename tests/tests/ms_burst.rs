//! A burst of new series (1000 at once, each needing an MS collection that
//! the MS takes a tenth of a second to create, as the real server does)
//! holds back neither the data of the series that already report every
//! second nor the UNIS poll.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]
#![allow(clippy::print_stderr, reason = "the figures are printed for the log")]

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::real_schemas;
use blipp_tests::unis_server::{Options, UnisServer, now_us};
use serde_json::{Value, json};

const NEW: usize = 1000;

#[test]
fn a_thousand_new_series_hold_back_neither_old_data_nor_the_unis_poll() {
    let Some(schemas) = real_schemas("a burst of new series against the UNIS/MS test server")
    else {
        return;
    };
    let server = UnisServer::start(Options {
        schemas: Some(schemas),
        events_delay: Some(Duration::from_millis(100)),
        ..Options::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let doc = json!({"properties": {"configurations": {
        "unis_url": server.url(),
        "unis_poll_interval": 1,
        "unis_max_backoff": 2,
        "spool_dir": dir.path().join("spool").display().to_string(),
        "probes": {
            "mem": {"probe_module": "mem", "schedule_params": {"every": 1}},
            "cpu": {"probe_module": "cpu", "schedule_params": {"every": 1}},
            // One series per line of `seq`: every match is its own
            // subject (burst:1 ... burst:1000), all appearing in one
            // collection, once: the burst (the 1000-group regex this test
            // used before took some 13 s per match, so it collected about
            // once in the burst too).
            "burst": {"probe_module": "cmd", "command": format!("seq {NEW}"),
                      "regex": "(?P<subject>(?P<v>\\d+))", "matches": "all",
                      "max_matches": NEW,
                      "eventTypes": {"v": "ps:tools:blipp:test:g"},
                      "collection_schedule": "builtins.onetime",
                      "schedule_params": {"start_time": now + 12.0}}
        }
    }}});
    let cfg = dir.path().join("blipp.json");
    std::fs::write(&cfg, doc.to_string()).unwrap();
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run.log"));
    let mids_of = |what: &dyn Fn(&str) -> bool| -> BTreeSet<String> {
        server
            .records("metadata")
            .iter()
            .filter(|m| m["eventType"].as_str().is_some_and(what))
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let is_mem = |t: &str| t.contains(":memory:");
    wait_for(
        60,
        "the old series' data",
        || blippd.log(),
        || {
            let mem = mids_of(&is_mem);
            !mem.is_empty() && server.data().keys().any(|m| mem.contains(m))
        },
    );
    let is_new = |t: &str| t.starts_with("ps:tools:blipp:test:g");
    wait_for(
        60,
        "the new series in UNIS",
        || blippd.log(),
        || mids_of(&is_new).len() == NEW,
    );
    let burst = now_us();
    // An edit in UNIS during the burst: applied within a poll interval (1 s)
    // and a second.
    server.edit_service(|p| p["configurations"]["probes"]["cpu"]["status"] = json!("OFF"));
    wait_for(
        2,
        "the edit to apply",
        || blippd.log(),
        || {
            blippd
                .log()
                .contains("probe stopped by the configuration probe=cpu")
        },
    );
    let new = mids_of(&is_new);
    wait_for(
        120,
        "every new collection",
        || blippd.log(),
        || {
            let events = server.events();
            new.iter().all(|m| events.contains_key(m))
        },
    );
    let done = now_us();
    let log = blippd.stop();

    // When the old series' data arrived, during the burst.
    let mem = mids_of(&is_mem);
    let mut arrivals: Vec<u64> = server
        .data_arrivals(&mem)
        .into_iter()
        .filter(|at| (burst..=done).contains(at))
        .collect();
    arrivals.insert(0, burst);
    arrivals.push(done);
    let gap = arrivals.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    // Collection creations for the new series (some may have begun while
    // their metadata was still being counted, before `burst`).
    let creates = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.target == "/events")
        .filter(|r| {
            let body = r.body.as_ref().map(Value::to_string).unwrap_or_default();
            new.iter().any(|m| body.contains(&format!("/metadata/{m}")))
        })
        .count();
    eprintln!(
        "burst of {NEW} new series: every collection after {:.1} s ({creates} POST /events), \
         the old series' data at most {:.2} s apart meanwhile",
        (done - burst) as f64 / 1e6,
        gap as f64 / 1e6
    );
    assert!(
        gap <= 2_000_000,
        "the old series' data stalled for {gap} µs:\n{log}"
    );
    assert_eq!(creates, NEW, "one POST /events per new series, no more");
}
