//! What the UNIS end-to-end tests share: blippd's configuration for
//! them, the schema-checked test server, and readings of what the server
//! holds (points per mid and probe, the latest sample of each probe, the
//! free-memory series and its gaps).

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::daemon::wait_for;
use crate::unis_server::{LoggedRequest, UnisServer};
use serde_json::{Value, json};

/// A configuration file for blippd, `dir/blipp.json`: [`config_doc`].
pub fn config(dir: &Path, url: &str, extra: &Value) -> PathBuf {
    let path = dir.join("blipp.json");
    std::fs::write(&path, config_doc(dir, url, extra).to_string()).unwrap();
    path
}

/// blippd's configuration for these tests: the default probes every
/// second, UNIS at `url`, polled every second, the spool in `dir`, and
/// `extra` merged in.
pub fn config_doc(dir: &Path, url: &str, extra: &Value) -> Value {
    let mut doc = json!({
        "properties": {"configurations": {
            "unis_url": url,
            "unis_poll_interval": 1,
            "unis_max_backoff": 2,
            "spool_dir": dir.join("spool").display().to_string(),
            "probe_defaults": {"schedule_params": {"every": 1}}
        }}
    });
    blipp::config::merge::merge(&mut doc, extra.clone());
    doc
}

pub fn server() -> Option<UnisServer> {
    crate::schema_checked_server("the blippd end-to-end tests against the UNIS/MS test server")
}

/// mids that have data, with their point counts.
pub fn data_counts(server: &UnisServer) -> BTreeMap<String, usize> {
    server
        .data()
        .into_iter()
        .map(|(m, d)| (m, d.len()))
        .collect()
}

pub fn ids(records: &[Value]) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// When blippd logged the first line of `log` that contains `line`, µs
/// since the epoch (the server's clock: the same host's).
pub fn logged_at(log: &str, line: &str) -> u64 {
    log.lines()
        .find(|l| l.contains(line))
        .and_then(|l| blipp::rfc3339::parse(l.split_whitespace().next()?).ok())
        .unwrap_or_else(|| panic!("no {line:?} line with a time:\n{log}"))
        .0
}

/// Whether a request went to the MS (`/events`, `/data`) rather than UNIS.
fn to_ms(r: &LoggedRequest) -> bool {
    r.target.starts_with("/events") || r.target.starts_with("/data")
}

/// Whether a request went to one service record (`/services/ID`).
fn to_service_record(r: &LoggedRequest) -> bool {
    r.target
        .strip_prefix("/services/")
        .is_some_and(|id| !id.contains(['/', '?']))
}

/// How many UNIS requests a blippd started at `started` (µs) sent to
/// register, as the server saw them: those it answered before blippd
/// logged `registered in UNIS` at `registered` (answered before blippd
/// read the answer, so none of them arrives after that).
pub fn registration_requests(server: &UnisServer, started: u64, registered: u64) -> usize {
    server
        .agent_requests(started, registered)
        .iter()
        .filter(|r| !to_ms(r))
        .count()
}

/// The requests of the first report after the registration that blippd
/// logged at `registered` (µs), as the server saw them: UNIS requests and
/// MS requests from then until the first accepted `POST /data`, that one
/// included. The service's polls and TTL renewals (`GET` and `PUT
/// /services/ID`) run beside the reports and are not counted.
pub fn first_report_requests(server: &UnisServer, registered: u64) -> (usize, usize) {
    let after = server.agent_requests(registered, u64::MAX);
    let end = after
        .iter()
        .position(|r| r.method == "POST" && r.target == "/data" && r.status == 201)
        .unwrap_or_else(|| panic!("no accepted POST /data after the registration"));
    let report: Vec<&LoggedRequest> = after[..=end]
        .iter()
        .filter(|r| !(matches!(r.method.as_str(), "GET" | "PUT") && to_service_record(r)))
        .collect();
    let ms = report.iter().filter(|r| to_ms(r)).count();
    (report.len() - ms, ms)
}

/// The probe each mid belongs to (metadata -> measurement -> probe name).
pub fn probe_of_mids(server: &UnisServer) -> BTreeMap<String, String> {
    let measurements = server.records("measurements");
    server
        .records("metadata")
        .iter()
        .filter_map(|md| {
            let m = measurements
                .iter()
                .find(|m| m["selfRef"] == md["parameters"]["measurement"]["href"])?;
            Some((
                md["id"].as_str()?.to_owned(),
                m["configuration"]["name"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Points received per probe.
pub fn points_per_probe(server: &UnisServer) -> BTreeMap<String, usize> {
    let owners = probe_of_mids(server);
    let mut out = BTreeMap::new();
    for (mid, n) in data_counts(server) {
        if let Some(p) = owners.get(&mid) {
            *out.entry(p.clone()).or_default() += n;
        }
    }
    out
}

pub fn set_status(server: &UnisServer, status: &str) {
    let id = server.records("services")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        server
            .put("services", &id, &json!({ "status": status }))
            .unwrap(),
        204
    );
}

/// The newest point's timestamp per probe.
pub fn latest_per_probe(server: &UnisServer) -> BTreeMap<String, u64> {
    let owners = probe_of_mids(server);
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for (mid, points) in server.data() {
        if let Some(p) = owners.get(&mid) {
            let newest = points
                .iter()
                .filter_map(|d| d["ts"].as_u64())
                .max()
                .unwrap_or(0);
            let e = out.entry(p.clone()).or_default();
            *e = (*e).max(newest);
        }
    }
    out
}

/// Tells for each probe whether the server holds a point it measured
/// after `since` (µs). Samples taken before a probe stopped may arrive
/// later; their timestamps are older.
pub fn measured_since(server: &UnisServer, probes: &[&str], since: u64) -> BTreeMap<String, bool> {
    let latest = latest_per_probe(server);
    probes
        .iter()
        .map(|p| ((*p).to_owned(), latest.get(*p).is_some_and(|t| *t > since)))
        .collect()
}

/// Waits (up to 30 s) until the server holds a point of each of `probes`
/// measured after `after` (µs). Waiting for probes that run until they
/// measured a few periods after a moment is also the observation window
/// of a probe on the same schedule that must not have measured since.
pub fn wait_for_data(server: &UnisServer, probes: &[&str], after: u64, log: impl Fn() -> String) {
    wait_for(
        30,
        &format!("data of {probes:?} measured after {after} µs"),
        log,
        || measured_since(server, probes, after).values().all(|m| *m),
    );
}

/// How many times blippd has polled its service record (`GET
/// /services/ID`).
pub fn polls(server: &UnisServer) -> usize {
    server
        .agent_requests(0, u64::MAX)
        .iter()
        .filter(|r| r.method == "GET" && to_service_record(r))
        .count()
}

/// Waits (up to 30 s) until blippd has polled UNIS `n` more times: the
/// observation window of what a poll may (wrongly) do, `n` poll
/// intervals long.
pub fn wait_for_polls(server: &UnisServer, n: usize, log: impl Fn() -> String) {
    let start = polls(server);
    wait_for(30, &format!("{n} more polls of UNIS"), log, || {
        polls(server) >= start + n
    });
}

/// Timestamps of the free-memory series, in order.
pub fn free_memory_points(server: &UnisServer) -> Vec<u64> {
    let md = server
        .records("metadata")
        .into_iter()
        .find(|m| m["eventType"] == "ps:tools:blipp:linux:memory:utilization:free")
        .expect("free memory metadata");
    let mut ts: Vec<u64> = server
        .data()
        .get(md["id"].as_str().unwrap())
        .map(|d| d.iter().map(|p| p["ts"].as_u64().unwrap()).collect())
        .unwrap_or_default();
    ts.sort_unstable();
    ts
}

/// Collections every second: no two consecutive points of one series
/// further apart than 1.6 s within [from, to].
pub fn assert_no_gap(ts: &[u64], from: u64, to: u64, what: &str) {
    let inside: Vec<u64> = ts
        .iter()
        .copied()
        .filter(|t| *t >= from && *t <= to)
        .collect();
    assert!(
        !inside.is_empty(),
        "{what}: no points between {from} and {to}"
    );
    assert!(
        inside[0] < from + 2_000_000,
        "{what}: first point {} ms after the start",
        (inside[0] - from) / 1000
    );
    for w in inside.windows(2) {
        assert!(
            w[1] - w[0] < 1_600_000,
            "{what}: a gap of {} µs: samples lost",
            w[1] - w[0]
        );
    }
}
