//! blippd registering with the UNIS/MS test server, as an operator runs it:
//! the default probes register node, ports, service, measurements and
//! metadata, create MS collections and deliver data under the right mids;
//! a restart keeps every mid and costs a constant number of requests;
//! `-e new`, `--no-query`, `--override` and `-e use`; the service TTL;
//! given ids, a deleted service and a bad configuration in UNIS; a port
//! for an interface that appears later; `--once`.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

use blipp::host::HostInfo;
use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::unis_scenario::{
    config, config_doc, data_counts, first_report_requests, ids, logged_at, measured_since,
    points_per_probe, probe_of_mids, registration_requests, server, wait_for_data, wait_for_polls,
};
use blipp_tests::unis_server::{Options, UnisServer, now_us};
use blipp_tests::{agent_bin, real_schemas, run_blippd};
use serde_json::{Value, json};

#[test]
fn default_probes_register_and_deliver_under_the_right_mids() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &server.url(), &json!({}));
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run1.log"));
    wait_for(
        60,
        "data of all four default probes, several mids in one POST /data",
        || blippd.log(),
        || {
            server.records("measurements").len() == 4
                && server
                    .records("measurements")
                    .iter()
                    .all(|m| m["eventTypes"].as_array().is_some_and(|e| !e.is_empty()))
                && server.data().len() >= 20
                && server.requests().iter().any(|r| {
                    r.target == "/data"
                        && r.body
                            .as_ref()
                            .and_then(Value::as_array)
                            .is_some_and(|a| a.len() > 1)
                })
        },
    );
    let log1 = blippd.stop();
    let host = HostInfo::gather(Path::new("/proc"), Path::new("/sys"));
    let (nodes, ports) = check_node_and_ports(&server, &host);
    let node_href = nodes[0]["selfRef"].as_str().unwrap();
    let (services, measurements) = check_service_and_measurements(&server, node_href);
    let metadata = check_series(&server, node_href, &ports, &measurements);
    check_values(&server, &host, &metadata);
    check_what_was_sent(&server, &log1);
    let first = FirstRun {
        nodes,
        ports,
        services,
        measurements,
        metadata,
    };
    restart_keeps_every_mid(&server, &cfg, dir.path(), &first);
}

/// What the first start registered.
struct FirstRun {
    nodes: Vec<Value>,
    ports: Vec<Value>,
    services: Vec<Value>,
    measurements: Vec<Value>,
    metadata: Vec<Value>,
}

/// The node, found by its URN, with the host's facts and its ports;
/// returns the nodes and ports.
fn check_node_and_ports(server: &UnisServer, host: &HostInfo) -> (Vec<Value>, Vec<Value>) {
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

    (nodes, ports)
}

/// The service runs on the node; one measurement per probe. Returns the
/// services and measurements.
fn check_service_and_measurements(
    server: &UnisServer,
    node_href: &str,
) -> (Vec<Value>, Vec<Value>) {
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

    (services, measurements)
}

/// Every mid with data has metadata of one of the measurements and an MS
/// collection; every point has an integer ts in µs; subjects are the
/// node or its ports. Returns the metadata.
fn check_series(
    server: &UnisServer,
    node_href: &str,
    ports: &[Value],
    measurements: &[Value],
) -> Vec<Value> {
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
    metadata
}

/// The right numbers under the right mids: free memory is under node, in
/// kB, below MemTotal; CPU utilization is a fraction.
fn check_values(server: &UnisServer, host: &HostInfo, metadata: &[Value]) {
    let data = server.data();
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
}

/// Every record is valid under the real schemas (the server refused
/// nothing blipp sent), bodies carry the perfSONAR content type, and one
/// POST /data carries many mids.
#[expect(
    clippy::print_stderr,
    reason = "the registration figures are printed for the log"
)]
fn check_what_was_sent(server: &UnisServer, log1: &str) {
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
}

/// A restart with the same configuration: nothing new is created, the
/// same mids receive data, and registration costs a few requests.
#[expect(
    clippy::print_stderr,
    reason = "the registration figures are printed for the log"
)]
fn restart_keeps_every_mid(server: &UnisServer, cfg: &Path, dir: &Path, first_run: &FirstRun) {
    let FirstRun {
        nodes,
        ports,
        services,
        measurements,
        metadata,
    } = first_run;
    let before = server.requests().len();
    let started = now_us();
    let old_mids = data_counts(server);
    let blippd = Blippd::start(cfg, &[], &dir.join("run2.log"));
    wait_for(
        60,
        "new data after the restart",
        || blippd.log(),
        || {
            let now = data_counts(server);
            now.iter()
                .filter(|(m, n)| old_mids.get(*m).is_some_and(|o| *n > o))
                .count()
                >= 10
        },
    );
    wait_for(
        30,
        "the restart's first report",
        || blippd.log(),
        || blippd.log().contains("first report delivered"),
    );
    let log2 = blippd.stop();
    assert_eq!(ids(&server.records("nodes")), ids(nodes));
    assert_eq!(ids(&server.records("ports")), ids(ports));
    assert_eq!(ids(&server.records("services")), ids(services));
    assert_eq!(ids(&server.records("measurements")), ids(measurements));
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
    for (mid, n) in data_counts(server) {
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
    let registered = logged_at(&log2, "registered in UNIS");
    let requests = registration_requests(server, started, registered);
    let (unis, ms) = first_report_requests(server, registered);
    eprintln!(
        "restart: registration {requests} requests, first report {unis} UNIS and {ms} MS requests"
    );
    assert_eq!(unis, 0, "after a restart no metadata is created");
    // blippd looks its mids up 200 to a `GET /events?mids=` (a 5 kB URL):
    // a host with many disks (detached loop devices keep their counters and
    // are reported) has more than one such lookup.
    let lookups = metadata.len().div_ceil(200);
    assert!(
        ms <= lookups + 1,
        "{lookups} GET /events for {} series and one POST /data, not {ms}",
        metadata.len()
    );
    assert!(requests <= 8, "registration took {requests} requests");
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
    // Each run lasts until `done(registered)` holds, `registered` being
    // when blippd had registered (µs).
    let run = |args: &[&str], name: &str, done: &dyn Fn(u64) -> bool| {
        let blippd = Blippd::start(&cfg, args, &dir.path().join(name));
        wait_for(
            60,
            "registration",
            || blippd.log(),
            || blippd.log().contains("registered in UNIS"),
        );
        let registered = now_us();
        wait_for(30, name, || blippd.log(), || done(registered));
        blippd.stop()
    };
    // The observation window of a run where something must not happen:
    // cpu, every second, has delivered what it measured 2 s after the
    // registration.
    let cpu_ran =
        |registered: u64| measured_since(&server, &["cpu"], registered + 2_000_000)["cpu"];
    let mem_points = || points_per_probe(&server).get("mem").copied().unwrap_or(0);
    run(&[], "first.log", &|_| mem_points() > 0);

    // The operator turns mem OFF in UNIS: UNIS wins by default.
    server.edit_service(|p| p["configurations"]["probes"]["mem"]["status"] = json!("OFF"));
    let before = mem_points();
    let log = run(&[], "unis-wins.log", &cpu_ran);
    assert_eq!(mem_points(), before, "mem is OFF in UNIS:\n{log}");
    // --override: the file (mem ON) wins.
    run(&["--override"], "override.log", &|_| mem_points() > before);
    // --no-query: UNIS is not read, the local configuration runs.
    server.edit_service(|p| p["configurations"]["probes"]["mem"]["status"] = json!("OFF"));
    let before = mem_points();
    run(&["--no-query"], "no-query.log", &|_| mem_points() > before);
    assert_eq!(server.records("services").len(), 1);

    // -e use: a measurement of this service made by someone else runs;
    // without it, it is left alone.
    let service = server.records("services").remove(0);
    let theirs = json!({"id": "theirs", "service": service["selfRef"], "eventTypes": [],
        "configuration": {"probe_module": "mem", "name": "their-mem", "schedule_params": {"every": 1}}});
    assert_eq!(server.post("measurements", &theirs).unwrap(), 201);
    let theirs_href = format!("{}/measurements/theirs", server.url());
    let their_mids = || {
        server
            .records("metadata")
            .iter()
            .filter(|m| m["parameters"]["measurement"]["href"] == theirs_href.as_str())
            .count()
    };
    run(&[], "ignore.log", &cpu_ran);
    assert_eq!(their_mids(), 0, "-e ignore (the default) leaves it alone");
    let log = run(&["-e", "use"], "use.log", &|_| their_mids() > 0);
    assert!(
        log.contains("running a measurement made by others"),
        "{log}"
    );

    // --new: a fresh service, with its own measurements.
    run(&["--new"], "new.log", &|_| {
        server.records("services").len() == 2
    });
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
    let registered = now_us();
    let puts = || {
        server
            .requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.target.starts_with("/services/"))
            .count()
    };
    wait_for(30, "four renewals", || blippd.log(), || puts() >= 4);
    let service = server.records("services").remove(0);
    let age = now_us() - service["ts"].as_u64().unwrap();
    let took = now_us() - registered;
    blippd.stop();
    assert!(
        age < 1_500_000,
        "the service is {age} µs old with a TTL of 2 s: not renewed"
    );
    // A renewal at least every TTL: four of them within about 4 TTLs.
    assert!(
        took < 10_000_000,
        "four renewals took {took} µs with a TTL of 2 s"
    );
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
        let started = now_us();
        let blippd = Blippd::start(&cfg, &[], &dir.path().join(format!("{run}.log")));
        wait_for(
            60,
            "the first report",
            || blippd.log(),
            || blippd.log().contains("first report delivered"),
        );
        let log = blippd.stop();
        let registered = logged_at(&log, "registered in UNIS");
        let registration = registration_requests(&server, started, registered);
        assert_eq!(registration, 6, "{run}: registering 12 probes");
        let (unis, ms) = first_report_requests(&server, registered);
        eprintln!(
            "{run}: registration {registration} requests, first report {unis} UNIS and {ms} MS requests"
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
    // mem goes on, and two more polls see the same refused configuration
    // (one error, not one per poll: below).
    let since = now_us();
    wait_for_data(&server, &["mem"], since, || blippd.log());
    wait_for_polls(&server, 2, || blippd.log());
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
    let cfg = config_doc(dir.path(), &server.url(), &json!({}));
    let out = run_blippd(dir.path(), &cfg.to_string(), &["--once", "--mode", "proc"]);
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
