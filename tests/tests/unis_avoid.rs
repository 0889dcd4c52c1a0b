//! `adaptive.simple_avoid` through UNIS: two blippd on two nodes share a
//! resource; each publishes its plan as its measurement's
//! `scheduled_times` and plans around the other's, so their runs never
//! overlap. One that stops frees its slots once its TTL has run out, and
//! the other then plans into them.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::BTreeMap;
use std::path::Path;

use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::unis_scenario::{config, probe_of_mids, server};
use blipp_tests::unis_server::UnisServer;
use serde_json::{Value, json};

/// Seconds between slots, seconds a run lasts (µs).
const EVERY_US: u64 = 500_000;
const DURATION_US: u64 = 200_000;
/// The service's `ttl`, which the plans' records carry too (s).
const TTL_S: u64 = 2;
/// How late a run may start (a loaded host) and still not be taken for
/// an overlap.
const LATE_US: u64 = 60_000;

fn start(dir: &Path, url: &str, node: &str) -> Blippd {
    let dir = dir.join(node);
    std::fs::create_dir_all(&dir).unwrap();
    let extra = json!({
        "ttl": TTL_S,
        "properties": {"configurations": {
            "unis_poll_interval": 0.2,
            "unis_max_backoff": 1,
            "probes": {node: {
                "probe_module": "dummy",
                "resources": [{"ref": "http://unis.example.net/links/shared"}],
                "collection_schedule": "adaptive.simple_avoid",
                "schedule_params": {"every": EVERY_US as f64 / 1e6,
                    "duration": DURATION_US as f64 / 1e6,
                    "num_to_schedule": 20, "max_wait": 1}
            }}
        }}
    });
    let cfg = config(&dir, url, &extra);
    let urn = format!("urn:ogf:network:domain=example.net:node={node}:");
    Blippd::start(
        &cfg,
        &["--urn", &urn, "--control-socket", "none"],
        &dir.join("run.log"),
    )
}

/// Each probe's run starts (µs), from what reached the MS.
fn runs(server: &UnisServer) -> BTreeMap<String, Vec<u64>> {
    let owners = probe_of_mids(server);
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (mid, points) in server.data() {
        if let Some(p) = owners.get(&mid) {
            let e = out.entry(p.clone()).or_default();
            e.extend(points.iter().filter_map(|d| d["ts"].as_u64()));
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    out
}

/// The measurement record of probe `name`.
fn measurement(server: &UnisServer, name: &str) -> Value {
    server
        .records("measurements")
        .into_iter()
        .find(|m| m["configuration"]["name"] == name)
        .unwrap_or_else(|| panic!("no measurement of {name}"))
}

/// Its published slots, (start, end) in µs.
fn published(m: &Value) -> Vec<(u64, u64)> {
    let time = |v: &Value| blipp::rfc3339::parse(v.as_str().unwrap()).unwrap().0;
    m["scheduled_times"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| (time(&s["start"]), time(&s["end"])))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs of different probes closer than a run's length (less lateness).
fn overlaps(runs: &BTreeMap<String, Vec<u64>>) -> Vec<(String, u64, String, u64)> {
    let mut all: Vec<(u64, &String)> = runs
        .iter()
        .flat_map(|(p, ts)| ts.iter().map(move |t| (*t, p)))
        .collect();
    all.sort();
    all.windows(2)
        .filter(|w| w[0].1 != w[1].1 && w[1].0 < w[0].0 + DURATION_US - LATE_US)
        .map(|w| (w[0].1.clone(), w[0].0, w[1].1.clone(), w[1].0))
        .collect()
}

#[test]
fn two_nodes_sharing_a_resource_take_turns_and_a_stopped_ones_slots_free_after_its_ttl() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path(), &server.url(), "a");
    let b = start(dir.path(), &server.url(), "b");
    let logs = || format!("--- a:\n{}\n--- b:\n{}", a.log(), b.log());
    wait_for(40, "50 runs of both", logs, || {
        let r = runs(&server);
        let (na, nb) = (
            r.get("a").map_or(0, Vec::len),
            r.get("b").map_or(0, Vec::len),
        );
        na + nb >= 50 && na >= 10 && nb >= 10
    });
    let seen = runs(&server);
    assert_eq!(overlaps(&seen), [], "runs overlap: {seen:?}\n{}", logs());

    // Each published its plan, with its TTL, on its own measurement.
    let ma = measurement(&server, "a");
    let mb = measurement(&server, "b");
    for m in [&ma, &mb] {
        assert!(!published(m).is_empty(), "no scheduled_times: {m}");
        assert_eq!(m["ttl"], TTL_S, "{m}");
        assert!(m["configuration"]["resources"][0]["ref"].is_string(), "{m}");
    }
    assert_ne!(ma["service"], mb["service"], "two services, two nodes");

    // The one whose slots lie on the grid of whole and half seconds held
    // them first; the other was pushed off. Stopped just after it
    // published a plan (ten seconds of slots), its slots stay in UNIS, and
    // the other returns to the grid once their TTL has run out.
    let on_grid = |m: &Value| published(m).iter().all(|(s, _)| s % EVERY_US == 0);
    let (stopped, name, survivor, other) = match (on_grid(&ma), on_grid(&mb)) {
        (true, false) => (a, "a", b, "b"),
        (false, true) => (b, "b", a, "a"),
        _ => panic!("exactly one plan should be on the grid: a {ma}\nb {mb}"),
    };
    let plan = published(&measurement(&server, name));
    wait_for(
        15,
        "a new plan",
        || stopped.log(),
        || published(&measurement(&server, name)) != plan,
    );
    stopped.stop();
    let dead = measurement(&server, name);
    let dead_slots = published(&dead);
    let expired = dead["ts"].as_u64().unwrap() + TTL_S * 1_000_000;
    let into_dead = |server: &UnisServer| -> Vec<u64> {
        runs(server)
            .get(other)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| {
                dead_slots
                    .iter()
                    .any(|(s, e)| *t + LATE_US < *e && *s + LATE_US < *t + DURATION_US)
            })
            .collect()
    };
    wait_for(
        20,
        "a run in the stopped one's slots",
        || survivor.log(),
        || !into_dead(&server).is_empty(),
    );
    let taken = into_dead(&server);
    assert!(
        taken.iter().all(|t| *t >= expired),
        "runs in slots still reserved (TTL ends at {expired}): {taken:?}; slots {dead_slots:?}"
    );
    drop(survivor);
}

#[test]
fn a_scheduled_measurement_of_others_waits_for_its_scheduled_times() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &server.url(),
        &json!({"properties": {"configurations": {"probes": {"cpu": {"probe_module": "cpu"}}}}}),
    );
    let log = dir.path().join("run.log");
    // The service exists; someone adds a builtins.scheduled measurement to
    // it without slots (the original's arbiter waited for them).
    let first = Blippd::start(&cfg, &["--control-socket", "none"], &log);
    wait_for(
        60,
        "the service",
        || first.log(),
        || server.records("services").len() == 1,
    );
    first.stop();
    let service = server.records("services").remove(0);
    let theirs = json!({"id": "theirs", "service": service["selfRef"], "eventTypes": [],
        "configuration": {"probe_module": "mem", "name": "their-mem",
            "collection_schedule": "builtins.scheduled", "schedule_params": {"every": 0.5}}});
    assert_eq!(server.post("measurements", &theirs).unwrap(), 201);
    let blippd = Blippd::start(&cfg, &["-e", "use", "--control-socket", "none"], &log);
    wait_for(
        30,
        "the measurement to wait",
        || blippd.log(),
        || blippd.log().contains("waits for its scheduled_times"),
    );
    let points = || runs(&server).get("their-mem").cloned().unwrap_or_default();
    // Its slot arrives through UNIS (a PUT, as the original's
    // simple_avoid wrote them): it runs inside it, and only there.
    let start = blipp_tests::unis_server::now_us() / 1_000_000 + 2;
    let slot = (start * 1_000_000, (start + 2) * 1_000_000);
    let rfc = |us: u64| blipp::rfc3339::format(blipp::sample::Timestamp(us));
    let body = json!({"scheduled_times": [{"start": rfc(slot.0), "end": rfc(slot.1)}]});
    assert_eq!(server.put("measurements", "theirs", &body).unwrap(), 204);
    wait_for(
        30,
        "runs in the slot",
        || blippd.log(),
        || points().len() >= 3,
    );
    // cpu, every second, has delivered what it measured after the slot.
    wait_for(
        30,
        "the slot to end",
        || blippd.log(),
        || {
            runs(&server)
                .get("cpu")
                .is_some_and(|t| t.last().is_some_and(|t| *t > slot.1 + 1_000_000))
        },
    );
    let got = points();
    assert!(
        got.iter().all(|t| *t >= slot.0 && *t < slot.1),
        "outside {slot:?}: {got:?}"
    );
    assert!(got.len() >= 3 && got.len() <= 4, "{got:?}");
}
