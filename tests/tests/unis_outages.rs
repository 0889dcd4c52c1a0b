//! blippd across outages of the UNIS/MS server: samples taken while UNIS
//! is down are spooled, survive a restart and are delivered when it comes
//! back; an MS refusing deliveries for a while loses nothing.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::unis_scenario::{assert_no_gap, config, free_memory_points, server};
use blipp_tests::unis_server::{Fault, Options, UnisServer, free_port, now_us};
use blipp_tests::{agent_bin, real_schemas};
use serde_json::json;

#[test]
fn unis_down_at_start_samples_are_spooled_and_delivered_when_it_comes_back() {
    let Some(schemas) = real_schemas("the spool test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    // One report per probe in memory: the rest must go through the spool.
    let cfg = config(
        dir.path(),
        &url,
        &json!({"properties": {"configurations": {"probe_defaults": {"reporting_tolerance": 1}}}}),
    );
    let spool = dir.path().join("spool");
    let segments = || {
        std::fs::read_dir(&spool)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
                })
                .count()
            })
            .unwrap_or(0)
    };

    // First run: UNIS down all along; stopped, it leaves its samples in the
    // spool.
    agent_bin("blippd");
    let run1_start = now_us();
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run1.log"));
    wait_for(
        30,
        "UNIS found unreachable and samples spooled",
        || blippd.log(),
        || blippd.log().contains("UNIS unreachable") && segments() > 0,
    );
    let log1 = blippd.stop();
    let run1_end = now_us();
    assert!(log1.contains("UNIS unreachable"), "{log1}");
    assert!(segments() > 0, "nothing spooled:\n{log1}");

    // Second run: still down for a while, then UNIS comes up.
    let run2_start = now_us();
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run2.log"));
    wait_for(
        30,
        "the second run to find UNIS unreachable",
        || blippd.log(),
        || blippd.log().contains("UNIS unreachable"),
    );
    let up = now_us();
    let server = UnisServer::start_on(
        port,
        Options {
            schemas: Some(schemas),
            ..Options::default()
        },
    )
    .unwrap();
    wait_for(
        60,
        "the spooled samples of the first run",
        || blippd.log(),
        || {
            server
                .records("metadata")
                .iter()
                .any(|m| m["eventType"] == "ps:tools:blipp:linux:memory:utilization:free")
                && free_memory_points(&server)
                    .first()
                    .is_some_and(|t| *t < run1_end)
                && free_memory_points(&server)
                    .last()
                    .is_some_and(|t| *t > up + 2_000_000)
        },
    );
    let log2 = blippd.stop();
    let ts = free_memory_points(&server);
    assert_no_gap(&ts, run1_start, run1_end, "first run, UNIS down");
    assert_no_gap(&ts, run2_start, now_us(), "second run, UNIS down then up");
    assert!(log2.contains("registered in UNIS"), "{log2}");
    assert_eq!(segments(), 0, "the spool is empty once delivered");
}

#[test]
fn an_ms_outage_loses_nothing() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &server.url(),
        &json!({"properties": {"configurations": {"probe_defaults": {"reporting_tolerance": 2}}}}),
    );
    agent_bin("blippd");
    let start = now_us();
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run.log"));
    wait_for(60, "data", || blippd.log(), || server.data().len() > 10);
    server.inject(Fault {
        method: Some("POST".into()),
        path_prefix: "/data".into(),
        status: 503,
        after_handling: false,
    });
    // The outage lasts until the MS has refused three deliveries.
    wait_for(
        30,
        "three refused deliveries",
        || blippd.log(),
        || server.data_posts(503) >= 3,
    );
    server.clear_faults();
    let healed = now_us();
    wait_for(
        30,
        "delivery after the outage",
        || blippd.log(),
        || {
            free_memory_points(&server)
                .last()
                .is_some_and(|t| *t > healed + 1_000_000)
        },
    );
    let log = blippd.stop();
    assert!(
        log.contains("delivery failed"),
        "the outage was seen:\n{log}"
    );
    assert_no_gap(
        &free_memory_points(&server),
        start,
        now_us(),
        "across an MS outage",
    );
}
