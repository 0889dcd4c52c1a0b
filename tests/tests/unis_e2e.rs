//! blippd against the UNIS/MS test server, as an operator runs it: the
//! default probes register node, ports, service, measurements and
//! metadata, create MS collections and deliver data under the right mids;
//! a restart keeps every mid and costs a constant number of requests; a
//! configuration changed in UNIS is followed at the next poll; service
//! status OFF stops the data; samples taken while UNIS is down are spooled
//! and delivered when it comes back; TLS with client certificates works.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use blipp::host::HostInfo;
use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::tls::TlsMaterial;
use blipp_tests::unis_server::{Fault, Options, UnisServer, free_port, now_us};
use blipp_tests::{agent_bin, real_schemas};
use serde_json::{Value, json};

/// A configuration file for blippd: the default probes every second,
/// UNIS at `url`, polled every second, the spool in `dir`.
fn config(dir: &Path, url: &str, extra: &Value) -> PathBuf {
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
    let path = dir.join("blipp.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

fn server() -> Option<UnisServer> {
    blipp_tests::schema_checked_server(
        "the blippd end-to-end tests against the UNIS/MS test server",
    )
}

/// mids that have data, with their point counts.
fn data_counts(server: &UnisServer) -> BTreeMap<String, usize> {
    server
        .data()
        .into_iter()
        .map(|(m, d)| (m, d.len()))
        .collect()
}

fn ids(records: &[Value]) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn default_probes_register_and_deliver_under_the_right_mids() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &server.url(), &json!({}));
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run1.log"));
    wait_for(
        60,
        "data of all four default probes",
        || blippd.log(),
        || {
            server.records("measurements").len() == 4
                && server
                    .records("measurements")
                    .iter()
                    .all(|m| m["eventTypes"].as_array().is_some_and(|e| !e.is_empty()))
                && server.data().len() >= 20
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let log1 = blippd.stop();
    let host = HostInfo::gather(Path::new("/proc"), Path::new("/sys"));

    // The node, found by its URN, with the host's facts and its ports.
    let nodes = server.records("nodes");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let node = &nodes[0];
    assert_eq!(node["urn"], host.urn());
    assert_eq!(node["name"], host.fqdn);
    assert_eq!(
        node["properties"]["system"]["kernel"]["release"],
        host.kernel.release
    );
    assert_eq!(node["properties"]["system"]["cpus"], host.cpus);
    let node_href = node["selfRef"].as_str().unwrap();
    let ports = server.records("ports");
    assert_eq!(ports.len(), host.interfaces.len(), "one port per interface");
    let linked: BTreeSet<&str> = node["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["href"].as_str().unwrap())
        .collect();
    for iface in &host.interfaces {
        let port = ports
            .iter()
            .find(|p| p["name"] == iface.name.as_str())
            .unwrap();
        assert!(
            linked.contains(port["selfRef"].as_str().unwrap()),
            "{} linked from the node",
            iface.name
        );
        assert_eq!(
            port["capacity"].as_u64(),
            iface.speed.bytes_per_second(),
            "{}: capacity is the link speed",
            iface.name
        );
        assert_eq!(port["urn"], host.port_urn(&iface.name));
    }

    // The service runs on the node; one measurement per probe.
    let services = server.records("services");
    assert_eq!(services.len(), 1);
    let service = &services[0];
    assert_eq!(service["runningOn"]["href"], node_href);
    assert_eq!(service["serviceType"], "ps:tools:blipp");
    assert!(service["properties"]["configurations"]["probes"]["disk"].is_object());
    let measurements = server.records("measurements");
    let probes: BTreeSet<&str> = measurements
        .iter()
        .map(|m| m["configuration"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(probes, BTreeSet::from(["cpu", "disk", "mem", "net"]));
    for m in &measurements {
        assert_eq!(m["service"], service["selfRef"]);
        assert_eq!(m["configuration"]["schedule_params"]["every"], 1);
    }

    // Every mid with data has metadata of one of these measurements and an
    // MS collection; every point has an integer ts in µs.
    let metadata = server.records("metadata");
    let by_mid: BTreeMap<&str, &Value> = metadata
        .iter()
        .map(|m| (m["id"].as_str().unwrap(), m))
        .collect();
    let events = server.events();
    let data = server.data();
    let started = now_us() - 600_000_000;
    for (mid, points) in &data {
        let md = by_mid
            .get(mid.as_str())
            .unwrap_or_else(|| panic!("data under {mid}, which has no metadata"));
        let m = measurements
            .iter()
            .find(|m| m["selfRef"] == md["parameters"]["measurement"]["href"])
            .expect("the metadata's measurement is one of blipp's");
        assert!(
            m["eventTypes"]
                .as_array()
                .unwrap()
                .contains(&md["eventType"]),
            "{md}"
        );
        let ev = events
            .get(mid)
            .unwrap_or_else(|| panic!("no MS collection for {mid}"));
        assert_eq!(ev.record["metadata_URL"], md["selfRef"]);
        assert_eq!(
            ev.record["collection_size"],
            m["configuration"]["collection_size"]
        );
        assert_eq!(ev.record["ttl"], m["configuration"]["collection_ttl"]);
        for p in points {
            assert!(
                p["ts"]
                    .as_u64()
                    .is_some_and(|t| t > started && t <= now_us()),
                "{p}"
            );
        }
        // Subjects: ports are port resources, the rest is the node with
        // the thing named in parameters.
        let subject = md["parameters"]["subject"].as_str().unwrap();
        match subject.strip_prefix("port:") {
            Some(name) => {
                let port = ports
                    .iter()
                    .find(|p| p["selfRef"] == md["subject"]["href"])
                    .unwrap();
                assert_eq!(port["name"], name);
            }
            None => assert_eq!(md["subject"]["href"], node_href, "{md}"),
        }
    }
    // The right numbers under the right mids: free memory is under node,
    // in kB, below MemTotal.
    let free = metadata
        .iter()
        .find(|m| m["eventType"] == "ps:tools:blipp:linux:memory:utilization:free")
        .unwrap();
    let total = host.mem_total_kb.unwrap();
    for p in &data[free["id"].as_str().unwrap()] {
        assert!(
            p["value"].as_u64().is_some_and(|v| v > 0 && v < total),
            "{p}"
        );
    }
    let load = metadata
        .iter()
        .find(|m| {
            m["eventType"] == "ps:tools:blipp:linux:cpu:utilization:user"
                && m["parameters"]["subject"] == "node"
        })
        .unwrap();
    for p in &data[load["id"].as_str().unwrap()] {
        assert!(
            p["value"]
                .as_f64()
                .is_some_and(|v| (0.0..=1.0).contains(&v)),
            "{p}"
        );
    }
    // Every record is valid under the real schemas (the server refused
    // nothing blipp sent: no 4xx in its log).
    let schemas = real_schemas("schema check").unwrap();
    for (col, schema) in [
        ("nodes", "node"),
        ("ports", "port"),
        ("services", "service"),
        ("measurements", "measurement"),
        ("metadata", "metadata"),
    ] {
        for r in server.records(col) {
            schemas
                .validate(schema, &r)
                .unwrap_or_else(|e| panic!("{col}: {e}: {r}"));
        }
    }
    let log = server.requests();
    let refused: Vec<String> = log
        .iter()
        .filter(|r| {
            (400..500).contains(&r.status)
                && !(r.target == "/events" && r.status == 409)
                && !(r.target.starts_with("/events?") && r.status == 404)
        })
        .map(|r| format!("{} {} -> {}", r.method, r.target, r.status))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    for r in &log {
        if let Some(ct) = &r.content_type {
            assert!(
                ct.starts_with(
                    "application/perfsonar+json; profile=http://unis.crest.iu.edu/schema/20151104/"
                ),
                "{ct}"
            );
        } else {
            assert!(
                r.body.is_none(),
                "{} {} has a body without a type",
                r.method,
                r.target
            );
        }
    }
    // Many mids per POST /data.
    assert!(
        log.iter().any(|r| r.target == "/data"
            && r.body
                .as_ref()
                .and_then(Value::as_array)
                .is_some_and(|a| a.len() > 1)),
        "no POST /data carried several mids"
    );
    let registered = log1
        .lines()
        .find(|l| l.contains("registered in UNIS"))
        .unwrap_or_else(|| panic!("no registration line:\n{log1}"));
    eprintln!("first start: {registered}");

    // A restart with the same configuration: nothing new is created, the
    // same mids receive data, and registration costs a few requests.
    let before = server.requests().len();
    let old_mids = data_counts(&server);
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run2.log"));
    wait_for(
        60,
        "new data after the restart",
        || blippd.log(),
        || {
            let now = data_counts(&server);
            now.iter()
                .filter(|(m, n)| old_mids.get(*m).is_some_and(|o| *n > o))
                .count()
                >= 10
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let log2 = blippd.stop();
    assert_eq!(ids(&server.records("nodes")), ids(&nodes));
    assert_eq!(ids(&server.records("ports")), ids(&ports));
    assert_eq!(ids(&server.records("services")), ids(&services));
    assert_eq!(ids(&server.records("measurements")), ids(&measurements));
    // Every series of the first run kept its mid; metadata was created only
    // for series the first run never saw (a disk's first I/O, say).
    let series = |md: &Value| {
        (
            md["parameters"]["measurement"]["href"].to_string(),
            md["parameters"]["subject"].to_string(),
            md["eventType"].to_string(),
        )
    };
    let first: BTreeMap<_, _> = metadata
        .iter()
        .map(|m| (series(m), m["id"].clone()))
        .collect();
    assert_eq!(first.len(), metadata.len(), "one metadata per series");
    let now = server.records("metadata");
    let mut fresh = Vec::new();
    for m in &now {
        match first.get(&series(m)) {
            Some(id) => assert_eq!(*id, m["id"], "a series changed its mid: {m}"),
            None => fresh.push(series(m)),
        }
    }
    assert_eq!(
        now.len(),
        metadata.len() + fresh.len(),
        "duplicate metadata after the restart"
    );
    for (mid, n) in data_counts(&server) {
        if old_mids.get(&mid).is_some_and(|o| n > *o) || !old_mids.contains_key(&mid) {
            let md = now.iter().find(|m| m["id"] == mid.as_str()).unwrap();
            assert!(
                first.contains_key(&series(md)) == old_mids.contains_key(&mid),
                "data of an old series under a new mid: {md}"
            );
        }
    }
    // UNIS writes after the restart: the service (its TTL), and only for
    // series never seen before their metadata and the event types they add.
    let after: Vec<_> = server.requests().into_iter().skip(before).collect();
    let service_put = format!("PUT /services/{}", services[0]["id"].as_str().unwrap());
    for r in after.iter().filter(|r| {
        r.method != "GET" && !r.target.starts_with("/data") && !r.target.starts_with("/events")
    }) {
        let what = format!("{} {}", r.method, r.target);
        let body = r.body.clone().unwrap_or_default();
        let items = body
            .as_array()
            .cloned()
            .unwrap_or_else(|| vec![body.clone()]);
        match what.as_str() {
            w if w == service_put => {}
            "POST /metadata" => {
                for md in &items {
                    assert!(
                        !first.contains_key(&series(md)),
                        "metadata created again after the restart: {md}"
                    );
                }
            }
            "POST /measurements" => {
                for m in &items {
                    let old = measurements
                        .iter()
                        .find(|o| o["id"] == m["id"])
                        .expect("an existing measurement");
                    assert_eq!(m["configuration"], old["configuration"], "{m}");
                    let had: BTreeSet<&str> = old["eventTypes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    let has: BTreeSet<&str> = m["eventTypes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    assert!(has.is_superset(&had) && has.len() > had.len(), "{m}");
                }
            }
            other => panic!("unexpected write after the restart: {other}"),
        }
    }
    let registered = log2
        .lines()
        .find(|l| l.contains("registered in UNIS"))
        .unwrap();
    eprintln!("restart: {registered}");
    let first = log2
        .lines()
        .find(|l| l.contains("first report delivered"))
        .unwrap();
    eprintln!("restart: {first}");
    assert_eq!(
        logged(first, "first report delivered", "unis_requests="),
        0,
        "after a restart no metadata is created: {first}"
    );
    assert!(
        logged(first, "first report delivered", "ms_requests=") <= 2,
        "one GET /events and one POST /data: {first}"
    );
    let requests = logged(registered, "registered in UNIS", "requests=");
    assert!(
        requests <= 8,
        "registration took {requests} requests: {registered}"
    );
}

/// The number blippd logged as `field` (e.g. `requests=`) on the first
/// line of `log` that contains `line`.
fn logged(log: &str, line: &str, field: &str) -> u64 {
    log.lines()
        .find(|l| l.contains(line))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(field)?.parse().ok())
        })
        .unwrap_or_else(|| panic!("no {line:?} line with {field}:\n{log}"))
}

/// The probe each mid belongs to (metadata -> measurement -> probe name).
fn probe_of_mids(server: &UnisServer) -> BTreeMap<String, String> {
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
fn points_per_probe(server: &UnisServer) -> BTreeMap<String, usize> {
    let owners = probe_of_mids(server);
    let mut out = BTreeMap::new();
    for (mid, n) in data_counts(server) {
        if let Some(p) = owners.get(&mid) {
            *out.entry(p.clone()).or_default() += n;
        }
    }
    out
}

fn set_status(server: &UnisServer, status: &str) {
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
fn latest_per_probe(server: &UnisServer) -> BTreeMap<String, u64> {
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

/// Waits `secs` (for collections and their delivery), then tells for each
/// probe whether it measured anything after `since` (µs). Samples taken
/// before a probe stopped may arrive later; their timestamps are older.
fn measured_since(
    server: &UnisServer,
    probes: &[&str],
    since: u64,
    secs: u64,
) -> BTreeMap<String, bool> {
    std::thread::sleep(Duration::from_secs(secs));
    let latest = latest_per_probe(server);
    probes
        .iter()
        .map(|p| ((*p).to_owned(), latest.get(*p).is_some_and(|t| *t > since)))
        .collect()
}

#[test]
fn configuration_changed_in_unis_is_followed_and_status_off_stops_the_data() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &server.url(), &json!({}));
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run.log"));
    let all = ["cpu", "disk", "mem", "net"];
    wait_for(
        60,
        "data of every probe",
        || blippd.log(),
        || points_per_probe(&server).len() == 4,
    );

    // A probe's configuration changes in UNIS: at the next poll that probe,
    // and only it, restarts, and its measurement follows.
    server.edit_service(|p| {
        p["configurations"]["probes"]["mem"]["schedule_params"] = json!({"every": 2});
    });
    wait_for(
        15,
        "the mem measurement to follow",
        || blippd.log(),
        || {
            server.records("measurements").iter().any(|m| {
                m["configuration"]["name"] == "mem"
                    && m["configuration"]["schedule_params"]["every"] == 2
            })
        },
    );
    wait_for(
        15,
        "the mem probe to restart",
        || blippd.log(),
        || blippd.log().contains("restarting it"),
    );
    // Time for any other (wrong) restart to show.
    std::thread::sleep(Duration::from_secs(2));
    let restarts: Vec<String> = blippd
        .log()
        .lines()
        .filter(|l| l.contains("restarting it"))
        .map(str::to_owned)
        .collect();
    assert_eq!(restarts.len(), 1, "{restarts:?}");
    assert!(restarts[0].contains("probe=mem"), "{restarts:?}");

    // One probe OFF in UNIS: its data stops, the others' goes on.
    server.edit_service(|p| {
        p["configurations"]["probes"]["disk"]["status"] = json!("OFF");
    });
    wait_for(
        15,
        "the disk probe to stop",
        || blippd.log(),
        || {
            blippd
                .log()
                .contains("probe stopped by the configuration probe=disk")
        },
    );
    let disk_off = now_us();
    let grew = measured_since(&server, &all, disk_off, 3);
    assert!(!grew["disk"], "{grew:?}");
    assert!(grew["cpu"] && grew["net"], "{grew:?}");

    // The service OFF: every probe stops.
    set_status(&server, "OFF");
    wait_for(
        15,
        "every probe to stop",
        || blippd.log(),
        || {
            ["cpu", "mem", "net"].iter().all(|p| {
                blippd
                    .log()
                    .contains(&format!("probe stopped by the configuration probe={p}"))
            })
        },
    );
    let off = now_us();
    let grew = measured_since(&server, &all, off, 3);
    assert!(
        grew.values().all(|g| !g),
        "status OFF: no data, yet {grew:?}"
    );

    // ON again: the probes that are ON start again.
    let on = now_us();
    set_status(&server, "ON");
    wait_for(
        15,
        "data again",
        || blippd.log(),
        || {
            let latest = latest_per_probe(&server);
            ["cpu", "net"]
                .iter()
                .all(|p| latest.get(*p).is_some_and(|t| *t > on))
        },
    );
    let grew = measured_since(&server, &["disk"], disk_off, 2);
    assert!(!grew["disk"], "disk stays OFF");
    blippd.stop();
    assert_eq!(server.records("services").len(), 1);
    assert_eq!(
        server.records("measurements").len(),
        4,
        "changes update the measurements, they do not add any"
    );
}

/// Timestamps of the free-memory series, in order.
fn free_memory_points(server: &UnisServer) -> Vec<u64> {
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
fn assert_no_gap(ts: &[u64], from: u64, to: u64, what: &str) {
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
    let refused = || {
        server
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.target == "/data" && r.status == 503)
            .count()
    };
    wait_for(
        30,
        "three refused deliveries",
        || blippd.log(),
        || refused() >= 3,
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

#[test]
fn tls_with_a_client_certificate() {
    let Some(schemas) = real_schemas("the TLS end-to-end test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsMaterial::generate(dir.path()).unwrap();
    let server = UnisServer::start(Options {
        tls: Some(tls.clone()),
        schemas: Some(schemas),
        ..Options::default()
    })
    .unwrap();
    let with = |cert: &str, key: &str| {
        json!({"properties": {"configurations": {
            "use_ssl": true,
            "ssl_cert": tls.path(cert).display().to_string(),
            "ssl_key": tls.path(key).display().to_string(),
            "ssl_cafile": tls.path("ca.pem").display().to_string()
        }}})
    };
    // A certificate the server does not trust: blippd measures, but no
    // request gets through.
    let stranger_dir = dir.path().join("stranger");
    std::fs::create_dir(&stranger_dir).unwrap();
    let cfg = config(
        &stranger_dir,
        &server.url(),
        &with("stranger.pem", "stranger.key"),
    );
    let blippd = Blippd::start(&cfg, &[], &stranger_dir.join("run.log"));
    wait_for(
        30,
        "a failed TLS attempt",
        || blippd.log(),
        || blippd.log().contains("UNIS unreachable"),
    );
    blippd.stop();
    assert!(
        server.requests().is_empty(),
        "the server must refuse an untrusted client certificate"
    );

    let cfg = config(dir.path(), &server.url(), &with("client.pem", "client.key"));
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run.log"));
    wait_for(
        60,
        "data over TLS",
        || blippd.log(),
        || server.data().len() > 10,
    );
    blippd.stop();
    assert!(server.url().starts_with("https://"));
    assert_eq!(server.records("services").len(), 1);
    assert!(server.events().values().all(|e| {
        e.record["metadata_URL"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    }));
}

#[test]
fn new_no_query_override_and_existing_use() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    // The file lists two probes and sets mem ON explicitly.
    let cfg = config(
        dir.path(),
        &server.url(),
        &json!({"properties": {"configurations": {"probes": {
            "mem": {"probe_module": "mem", "status": "ON"},
            "cpu": {"probe_module": "cpu"}
        }}}}),
    );
    let run = |args: &[&str], name: &str, secs: u64| {
        let blippd = Blippd::start(&cfg, args, &dir.path().join(name));
        wait_for(
            60,
            "registration",
            || blippd.log(),
            || blippd.log().contains("registered in UNIS"),
        );
        std::thread::sleep(Duration::from_secs(secs));
        blippd.stop()
    };
    run(&[], "first.log", 3);
    let mem_points = || points_per_probe(&server).get("mem").copied().unwrap_or(0);
    assert!(mem_points() > 0);

    // The operator turns mem OFF in UNIS: UNIS wins by default.
    server.edit_service(|p| p["configurations"]["probes"]["mem"]["status"] = json!("OFF"));
    let before = mem_points();
    let log = run(&[], "unis-wins.log", 3);
    assert_eq!(mem_points(), before, "mem is OFF in UNIS:\n{log}");
    // --override: the file (mem ON) wins.
    let log = run(&["--override"], "override.log", 3);
    assert!(mem_points() > before, "--override runs mem:\n{log}");
    // --no-query: UNIS is not read, the local configuration runs.
    server.edit_service(|p| p["configurations"]["probes"]["mem"]["status"] = json!("OFF"));
    let before = mem_points();
    let log = run(&["--no-query"], "no-query.log", 3);
    assert!(mem_points() > before, "--no-query runs mem:\n{log}");
    assert_eq!(server.records("services").len(), 1);

    // -e use: a measurement of this service made by someone else runs;
    // without it, it is left alone.
    let service = server.records("services").remove(0);
    let theirs = json!({"id": "theirs", "service": service["selfRef"], "eventTypes": [],
        "configuration": {"probe_module": "mem", "name": "their-mem", "schedule_params": {"every": 1}}});
    let client = server.client().unwrap();
    let status = server.block_on(async {
        client
            .post(format!("{}/measurements", server.url()))
            .header("Content-Type", "application/perfsonar+json")
            .body(theirs.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 201);
    let theirs_href = format!("{}/measurements/theirs", server.url());
    let their_mids = || {
        server
            .records("metadata")
            .iter()
            .filter(|m| m["parameters"]["measurement"]["href"] == theirs_href.as_str())
            .count()
    };
    run(&[], "ignore.log", 3);
    assert_eq!(their_mids(), 0, "-e ignore (the default) leaves it alone");
    let log = run(&["-e", "use"], "use.log", 3);
    assert!(their_mids() > 0, "-e use runs it:\n{log}");
    assert!(
        log.contains("running a measurement made by others"),
        "{log}"
    );

    // --new: a fresh service, with its own measurements.
    run(&["--new"], "new.log", 2);
    assert_eq!(server.records("services").len(), 2);
}

#[test]
fn the_service_ttl_is_renewed() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &server.url(),
        &json!({"ttl": 2, "properties": {"configurations": {"probes": {"mem": {"probe_module": "mem"}}}}}),
    );
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run.log"));
    wait_for(
        60,
        "registration",
        || blippd.log(),
        || server.records("services").len() == 1,
    );
    std::thread::sleep(Duration::from_secs(5));
    let service = server.records("services").remove(0);
    let age = now_us() - service["ts"].as_u64().unwrap();
    blippd.stop();
    assert!(
        age < 1_500_000,
        "the service is {age} µs old with a TTL of 2 s: not renewed"
    );
    let puts = server
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.target.starts_with("/services/"))
        .count();
    assert!(puts >= 4, "{puts} renewals in 5 s with a TTL of 2 s");
}

#[test]
fn registration_cost_does_not_grow_with_the_probes() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    // 12 probes, each with several event types and subjects.
    let mut probes = serde_json::Map::new();
    for i in 0..6 {
        probes.insert(
            format!("cpu{i}"),
            json!({"probe_module": "cpu", "percpu": true}),
        );
        probes.insert(format!("net{i}"), json!({"probe_module": "net"}));
    }
    let cfg = config(
        dir.path(),
        &server.url(),
        &json!({"properties": {"configurations": {"probes": probes}}}),
    );
    for run in ["first", "restart"] {
        let blippd = Blippd::start(&cfg, &[], &dir.path().join(format!("{run}.log")));
        wait_for(
            60,
            "the first report",
            || blippd.log(),
            || blippd.log().contains("first report delivered"),
        );
        let log = blippd.stop();
        let registration = logged(&log, "registered in UNIS", "requests=");
        assert_eq!(registration, 6, "{run}: registering 12 probes");
        eprintln!(
            "{run}: registration {registration} requests, first report {} UNIS requests",
            logged(&log, "first report delivered", "unis_requests=")
        );
    }
    assert_eq!(server.records("measurements").len(), 12);
    assert!(
        server.records("metadata").len() > 12 * 9,
        "{}",
        server.records("metadata").len()
    );
}

#[test]
fn given_ids_a_deleted_service_and_a_bad_configuration_in_unis() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &server.url(),
        &json!({"properties": {"configurations": {"probes": {"mem": {"probe_module": "mem"}}}}}),
    );
    let args = [
        "-n",
        "node-given",
        "--urn",
        "urn:ogf:network:domain=test:node=given:",
        "-s",
        "svc-given",
    ];
    let blippd = Blippd::start(&cfg, &args, &dir.path().join("run.log"));
    wait_for(
        60,
        "registration",
        || blippd.log(),
        || blippd.log().contains("registered in UNIS"),
    );
    let node = server
        .record("nodes", "node-given")
        .expect("the node has the id given");
    assert_eq!(node["urn"], "urn:ogf:network:domain=test:node=given:");
    let ports = server.records("ports");
    assert!(ports.iter().all(|p| {
        p["urn"]
            .as_str()
            .unwrap()
            .starts_with("urn:ogf:network:domain=test:node=given:port=")
    }));
    let service = server
        .record("services", "svc-given")
        .expect("the service has the id given");
    assert_eq!(service["runningOn"]["href"], node["selfRef"]);

    // The service is deleted in UNIS: the next poll registers it again,
    // with the same id, and its measurements stay.
    let measurements = ids(&server.records("measurements"));
    let status = server.block_on(async {
        server
            .client()
            .unwrap()
            .delete(format!("{}/services/svc-given", server.url()))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 204);
    assert!(server.record("services", "svc-given").is_none());
    wait_for(
        15,
        "the service to come back",
        || blippd.log(),
        || server.record("services", "svc-given").is_some(),
    );
    assert_eq!(ids(&server.records("measurements")), measurements);

    // A configuration in UNIS that blipp refuses: it says so, keeps
    // measuring with what it has, and leaves the operator's record alone
    // (only keeping the service alive).
    server.edit_service(|p| {
        p["configurations"]["unis_poll_interval"] = json!("often");
    });
    wait_for(
        15,
        "the refusal",
        || blippd.log(),
        || {
            blippd
                .log()
                .contains("the configuration in UNIS is invalid")
        },
    );
    let since = now_us();
    let measured = measured_since(&server, &["mem"], since, 3);
    assert!(measured["mem"], "mem goes on");
    let service = server.record("services", "svc-given").unwrap();
    assert_eq!(
        service["properties"]["configurations"]["unis_poll_interval"], "often",
        "the operator's value is left for them to fix"
    );
    let log = blippd.stop();
    assert!(
        log.contains("/properties/configurations/unis_poll_interval"),
        "the refusal names the field:\n{log}"
    );
    let refusals = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("the configuration in UNIS is invalid"))
        .count();
    assert_eq!(refusals, 1, "one error, not one per poll");
}

#[test]
fn an_interface_that_appears_later_gets_its_port() {
    if !blipp_tests::require_root("an interface created in a network namespace while blippd runs") {
        return;
    }
    let Some(schemas) = real_schemas("the new-interface test") else {
        return;
    };
    let ns = blipp_tests::netns::NetNs::new("unis").unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    ns.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ])
    .unwrap();
    for dev in ["veth0", "veth1"] {
        ns.ip(&["link", "set", dev, "up"]).unwrap();
    }
    let server = UnisServer::start_in(
        &ns,
        Options {
            schemas: Some(schemas),
            ..Options::default()
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &server.url(),
        &json!({"properties": {"configurations": {"probes": {"net": {"probe_module": "net"}}}}}),
    );
    let log = dir.path().join("run.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(agent_bin("blippd"))
        .arg("-c")
        .arg(&cfg)
        .args(["-d", "debug"])
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let port_names = || -> BTreeSet<String> {
        server
            .records("ports")
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    wait_for(60, "the namespace's ports", read_log, || {
        port_names() == BTreeSet::from(["lo".into(), "veth0".into(), "veth1".into()])
    });
    ns.ip(&[
        "link", "add", "veth2", "type", "veth", "peer", "name", "veth3",
    ])
    .unwrap();
    for dev in ["veth2", "veth3"] {
        ns.ip(&["link", "set", dev, "up"]).unwrap();
    }
    wait_for(30, "a port and metadata for veth2", read_log, || {
        let Some(port) = server
            .records("ports")
            .into_iter()
            .find(|p| p["name"] == "veth2")
        else {
            return false;
        };
        server.records("metadata").iter().any(|m| {
            m["parameters"]["subject"] == "port:veth2" && m["subject"]["href"] == port["selfRef"]
        })
    });
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) };
    assert!(child.wait().unwrap().success(), "{}", read_log());
    let node = server.records("nodes").remove(0);
    let linked: BTreeSet<&str> = node["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["href"].as_str().unwrap())
        .collect();
    for port in server.records("ports") {
        assert!(
            linked.contains(port["selfRef"].as_str().unwrap()),
            "{} is linked from the node",
            port["name"]
        );
    }
    assert_eq!(server.records("nodes").len(), 1);
}

#[test]
fn once_registers_delivers_and_exits() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &server.url(), &json!({}));
    let out = Command::new(agent_bin("blippd"))
        .arg("-c")
        .arg(&cfg)
        .args(["--once", "--mode", "proc"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(out.stdout.is_empty(), "samples go to UNIS, not stdout");
    assert_eq!(server.records("measurements").len(), 4, "{log}");
    let owners = probe_of_mids(&server);
    let probes: BTreeSet<&String> = server.data().keys().filter_map(|m| owners.get(m)).collect();
    assert_eq!(
        probes.len(),
        4,
        "one collection of every probe delivered: {probes:?}\n{log}"
    );
    let spool = dir.path().join("spool");
    let left = std::fs::read_dir(&spool)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            })
            .count()
        })
        .unwrap_or(0);
    assert_eq!(left, 0, "nothing left behind in the spool");
}
