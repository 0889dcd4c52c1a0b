//! Nothing collected is lost, and nothing is delivered twice, when blippd
//! is killed (SIGKILL) during an MS outage, again and again, or when the MS
//! stored a batch but its answer never came.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::json_lines;
use blipp_tests::unis_server::{Fault, UnisServer};
use serde_json::{Value, json};

fn server() -> Option<UnisServer> {
    blipp_tests::schema_checked_server("delivery to the MS across crashes")
}

/// The mem probe every 0.2 s, each sample also written to `truth` (what
/// was collected), UNIS polled every second, the spool in `dir`.
fn config(dir: &Path, url: &str, truth: &Path) -> PathBuf {
    let doc = json!({"properties": {"configurations": {
        "unis_url": url,
        "unis_poll_interval": 1,
        "unis_max_backoff": 1,
        "spool_dir": dir.join("spool").display().to_string(),
        "probes": {"mem": {"probe_module": "mem", "schedule_params": {"every": 0.2},
                           "data_file": truth.display().to_string()}}
    }}});
    let path = dir.join("blipp.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

fn collected(truth: &Path) -> Vec<Value> {
    json_lines(&std::fs::read_to_string(truth).unwrap_or_default())
}

/// What the MS holds, by event type: the timestamps in the order stored.
fn in_ms(server: &UnisServer) -> BTreeMap<String, Vec<u64>> {
    let types: BTreeMap<String, String> = server
        .records("metadata")
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m["eventType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (mid, points) in server.data() {
        if let Some(t) = types.get(&mid) {
            out.entry(t.clone())
                .or_default()
                .extend(points.iter().filter_map(|d| d["ts"].as_u64()));
        }
    }
    out
}

fn no_duplicates_and_in_order(ms: &BTreeMap<String, Vec<u64>>) {
    for (t, ts) in ms {
        assert!(
            ts.windows(2).all(|w| w[0] < w[1]),
            "{t}: duplicated or out of order: {ts:?}"
        );
    }
}

/// A number from 0 to n-1 that differs from run to run.
fn some(n: usize) -> usize {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize
        % n
}

#[test]
fn killed_again_and_again_during_an_ms_outage_it_loses_at_most_the_collection_in_progress() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.jsonl");
    let cfg = config(dir.path(), &server.url(), &truth);
    let log = |n: usize| dir.path().join(format!("run{n}.log"));
    let blippd = Blippd::start(&cfg, &[], &log(0));
    wait_for(
        60,
        "data in the MS",
        || blippd.log(),
        || !in_ms(&server).is_empty(),
    );
    server.inject(Fault {
        method: Some("POST".into()),
        path_prefix: "/data".into(),
        status: 503,
        after_handling: false,
    });
    // The last collection before each kill may be lost: its timestamp.
    let mut in_progress = BTreeSet::new();
    let mut blippd = Some(blippd);
    for run in 1..=4 {
        let b = blippd
            .take()
            .unwrap_or_else(|| Blippd::start(&cfg, &[], &log(run)));
        let lines = collected(&truth).len();
        // At a moment that differs from run to run: after 5 to 24 more
        // collections (every mem collection writes several lines).
        let more = 5 + some(20);
        wait_for(
            60,
            "collections during the outage",
            || b.log(),
            || collected(&truth).len() >= lines + more * 5,
        );
        b.kill();
        if let Some(last) = collected(&truth)
            .iter()
            .filter_map(|s| s["ts"].as_u64())
            .max()
        {
            in_progress.insert(last);
        }
    }
    server.clear_faults();
    let b = Blippd::start(&cfg, &[], &log(9));
    let expected = || -> BTreeMap<String, BTreeSet<u64>> {
        let mut e: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for s in collected(&truth) {
            let ts = s["ts"].as_u64().unwrap();
            if !in_progress.contains(&ts) {
                e.entry(s["eventType"].as_str().unwrap().to_owned())
                    .or_default()
                    .insert(ts);
            }
        }
        e
    };
    let missing = || -> usize {
        let ms = in_ms(&server);
        expected()
            .iter()
            .map(|(t, want)| {
                let have: BTreeSet<u64> =
                    ms.get(t).cloned().unwrap_or_default().into_iter().collect();
                want.difference(&have).count()
            })
            .sum()
    };
    wait_for(
        60,
        "every sample collected before the kills",
        || b.log(),
        || missing() == 0,
    );
    b.stop();
    let ms = in_ms(&server);
    no_duplicates_and_in_order(&ms);
    // Nothing in the MS that was not collected.
    let all: BTreeSet<(String, u64)> = collected(&truth)
        .iter()
        .map(|s| {
            (
                s["eventType"].as_str().unwrap().to_owned(),
                s["ts"].as_u64().unwrap(),
            )
        })
        .collect();
    for (t, ts) in &ms {
        for x in ts {
            assert!(
                all.contains(&(t.clone(), *x)),
                "{t} {x} was never collected"
            );
        }
    }
}

#[test]
fn a_batch_the_ms_stored_without_answering_is_not_sent_again() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.jsonl");
    let cfg = config(dir.path(), &server.url(), &truth);
    let b = Blippd::start(&cfg, &[], &dir.path().join("run.log"));
    wait_for(
        60,
        "data in the MS",
        || b.log(),
        || !in_ms(&server).is_empty(),
    );
    // The MS stores every POST /data but the answer is lost.
    server.inject(Fault {
        method: Some("POST".into()),
        path_prefix: "/data".into(),
        status: 503,
        after_handling: true,
    });
    wait_for(
        30,
        "three sends whose answer was lost",
        || b.log(),
        || server.data_posts(503) >= 3,
    );
    server.clear_faults();
    let lines = collected(&truth).len();
    wait_for(
        30,
        "deliveries again",
        || b.log(),
        || {
            let newest = collected(&truth)[..lines]
                .iter()
                .filter_map(|s| s["ts"].as_u64())
                .max();
            let ms = in_ms(&server);
            newest.is_some_and(|n| ms.values().any(|ts| ts.contains(&n)))
        },
    );
    let log = b.stop();
    assert!(
        log.contains("already in the MS are not sent again"),
        "{log}"
    );
    no_duplicates_and_in_order(&in_ms(&server));
}

/// The `agent` probe shows the sink's traffic and, during an outage, the
/// backlog growing; once the MS answers again, nothing waits.
#[test]
fn the_agent_probe_shows_a_backlog_before_it_is_loss() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.jsonl");
    let agent_file = dir.path().join("agent.jsonl");
    let cfg = config(dir.path(), &server.url(), &truth);
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    doc["properties"]["configurations"]["probes"]["agent"] = json!({"probe_module": "agent",
        "schedule_params": {"every": 0.5}, "data_file": agent_file.display().to_string()});
    std::fs::write(&cfg, doc.to_string()).unwrap();
    let b = Blippd::start(&cfg, &[], &dir.path().join("run.log"));
    let latest = |et: &str| -> Option<f64> {
        collected(&agent_file)
            .iter()
            .rev()
            .find(|s| s["eventType"] == format!("ps:tools:blipp:agent:{et}"))
            .and_then(|s| s["value"].as_f64())
    };
    wait_for(
        60,
        "MS requests counted",
        || b.log(),
        || latest("ms:requests").is_some_and(|r| r > 0.0),
    );
    assert_eq!(latest("pending:age"), Some(0.0), "nothing waits yet");
    server.inject(Fault {
        method: Some("POST".into()),
        path_prefix: "/data".into(),
        status: 503,
        after_handling: false,
    });
    wait_for(
        30,
        "the backlog to show",
        || b.log(),
        || {
            latest("spool:bytes").is_some_and(|v| v > 0.0)
                && latest("pending:age").is_some_and(|v| v >= 2.0)
                && latest("sink:failures").is_some_and(|v| v > 0.0)
        },
    );
    server.clear_faults();
    wait_for(
        30,
        "the backlog to go",
        || b.log(),
        || latest("pending:age") == Some(0.0) && latest("spool:bytes") == Some(0.0),
    );
    b.stop();
}
