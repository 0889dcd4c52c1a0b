//! `registration_probe`: a real process on the host, watched by pidfile or
//! by name, kept as a UNIS service record in the test server: ON while it
//! runs, OFF once the test kills it, and the same record (found by access
//! point and type, or type and node) after blippd restarts; without UNIS
//! it still reports liveness; a file of the original's
//! `registrationconfig.json` shape passes `--check`.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::Path;
use std::process::{Child, Command};

use blipp_tests::blippd_samples;
use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::unis_scenario::{config, server};
use blipp_tests::unis_server::UnisServer;
use serde_json::{Value, json};

const TYPE_BY_PIDFILE: &str = "http://svc.example.net/echo";
const TYPE_BY_NAME: &str = "http://svc.example.net/relay";

/// The newest version of every service record of `service_type`.
fn services(server: &UnisServer, service_type: &str) -> Vec<Value> {
    server
        .records("services")
        .into_iter()
        .filter(|s| s["serviceType"] == service_type)
        .collect()
}

/// Waits until the only record of `service_type` has `status`; returns it.
fn wait_status(server: &UnisServer, blippd: &Blippd, service_type: &str, status: &str) -> Value {
    wait_for(
        30,
        &format!("the {service_type} record with status {status}"),
        || blippd.log(),
        || {
            services(server, service_type)
                .iter()
                .any(|s| s["status"] == status)
        },
    );
    let found = services(server, service_type);
    assert_eq!(found.len(), 1, "one record, no duplicate: {found:?}");
    found.into_iter().next().unwrap()
}

/// `POST`s and `PUT`s of a record of `service_type`.
fn record_writes(server: &UnisServer, service_type: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| {
            (r.method == "POST" || r.method == "PUT")
                && r.target.starts_with("/services")
                && r.body.as_ref().is_some_and(|b| {
                    b["serviceType"] == service_type
                        || b.as_array()
                            .is_some_and(|a| a.iter().any(|x| x["serviceType"] == service_type))
                })
        })
        .count()
}

fn node_href(server: &UnisServer) -> String {
    let nodes = server.records("nodes");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    nodes[0]["selfRef"].as_str().unwrap().to_owned()
}

/// `sleep 300` under the name `name` (a copy of the program), so that a
/// name lookup cannot find anyone else's process.
fn named_sleep(dir: &Path, name: &str) -> Child {
    let program = dir.join(name);
    let sleep = Command::new("sh")
        .args(["-c", "command -v sleep"])
        .output()
        .unwrap();
    let sleep = String::from_utf8(sleep.stdout).unwrap();
    blipp_tests::copy_program(Path::new(sleep.trim()), &program);
    Command::new(&program).arg("300").spawn().unwrap()
}

fn stop(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_pidfile_service_turns_on_and_off_and_is_found_again() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("echo.pid");
    let child = Command::new("sleep").arg("300").spawn().unwrap();
    std::fs::write(&pidfile, format!("{}\n", child.id())).unwrap();
    let cfg = config(
        dir.path(),
        &server.url(),
        &json!({"properties": {"configurations": {"probes": {"echo": {
            "probe_module": "registration_probe",
            "pidfile": pidfile.display().to_string(),
            "service_type": TYPE_BY_PIDFILE,
            "service_name": "echo",
            "service_description": "an echo service for the test",
            "service_accesspoint": "tcp://127.0.0.1:7",
            "service_ttl": 120
        }}}}}),
    );
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run1.log"));
    let on = wait_status(&server, &blippd, TYPE_BY_PIDFILE, "ON");
    assert_eq!(on["runningOn"]["href"], node_href(&server).as_str());
    assert_eq!(on["accessPoint"], "tcp://127.0.0.1:7");
    assert_eq!(on["name"], "echo");
    assert_eq!(on["description"], "an echo service for the test");
    assert_eq!(on["ttl"], 120);
    // Collections with an unchanged status write nothing.
    wait_for(
        30,
        "four ON samples in the MS",
        || blippd.log(),
        || {
            server
                .data()
                .values()
                .flatten()
                .filter(|d| d["value"] == "ON")
                .count()
                >= 4
        },
    );
    assert_eq!(
        record_writes(&server, TYPE_BY_PIDFILE),
        1,
        "only the creation"
    );
    stop(child);
    let off = wait_status(&server, &blippd, TYPE_BY_PIDFILE, "OFF");
    assert_eq!(off["id"], on["id"], "the same record turned OFF");
    // The liveness samples reach the MS too.
    wait_for(
        30,
        "status samples in the MS",
        || blippd.log(),
        || {
            server
                .data()
                .values()
                .flatten()
                .any(|d| d["value"] == "OFF")
                && server.data().values().flatten().any(|d| d["value"] == "ON")
        },
    );
    blippd.stop();

    let child = Command::new("sleep").arg("300").spawn().unwrap();
    std::fs::write(&pidfile, format!("{}\n", child.id())).unwrap();
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run2.log"));
    let again = wait_status(&server, &blippd, TYPE_BY_PIDFILE, "ON");
    assert_eq!(again["id"], on["id"], "found again, not duplicated");
    blippd.stop();
    stop(child);
}

#[test]
fn a_named_service_without_access_point_is_found_by_type_and_node() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let name = format!("bw-relay-{}", std::process::id() % 100_000);
    let child = named_sleep(dir.path(), &name);
    let cfg = config(
        dir.path(),
        &server.url(),
        &json!({"properties": {"configurations": {"probes": {"relay": {
            "probe_module": "registration_probe",
            "process_name": name,
            "service_type": TYPE_BY_NAME
        }}}}}),
    );
    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run1.log"));
    let on = wait_status(&server, &blippd, TYPE_BY_NAME, "ON");
    assert_eq!(on["runningOn"]["href"], node_href(&server).as_str());
    assert_eq!(on["ttl"], 600, "the original's default TTL");
    assert!(on.get("accessPoint").is_none(), "{on}");
    stop(child);
    let off = wait_status(&server, &blippd, TYPE_BY_NAME, "OFF");
    assert_eq!(off["id"], on["id"]);
    blippd.stop();

    let blippd = Blippd::start(&cfg, &[], &dir.path().join("run2.log"));
    wait_for(
        30,
        "the restarted blippd's registration",
        || blippd.log(),
        || blippd.log().contains("watched service's status written"),
    );
    let still = wait_status(&server, &blippd, TYPE_BY_NAME, "OFF");
    assert_eq!(still["id"], on["id"], "found again, not duplicated");
    let child = named_sleep(dir.path(), &name);
    let back = wait_status(&server, &blippd, TYPE_BY_NAME, "ON");
    assert_eq!(back["id"], on["id"]);
    blippd.stop();
    stop(child);
}

/// Without a UNIS URL the probe still says whether the service runs.
#[test]
fn without_unis_liveness_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("svc.pid");
    let child = Command::new("sleep").arg("300").spawn().unwrap();
    std::fs::write(&pidfile, child.id().to_string()).unwrap();
    let probe = |pidfile: &Path| {
        json!({"properties": {"configurations": {"probes": {"svc": {
            "probe_module": "registration_probe",
            "pidfile": pidfile.display().to_string(),
            "service_type": TYPE_BY_PIDFILE
        }}}}})
    };
    let status = |samples: &[Value]| {
        let found: Vec<&Value> = samples
            .iter()
            .filter(|s| s["eventType"] == "ps:tools:blipp:linux:registration:status")
            .collect();
        assert_eq!(found.len(), 1, "{samples:?}");
        assert_eq!(found[0]["subject"], "service:svc");
        found[0]["value"].as_str().unwrap().to_owned()
    };
    let on = blippd_samples(&probe(&pidfile), &["--once", "--control-socket", "none"]);
    assert_eq!(status(&on), "ON");
    assert!(
        on.iter().any(
            |s| s["eventType"] == "ps:tools:blipp:linux:registration:pid"
                && s["value"] == child.id()
        ),
        "{on:?}"
    );
    stop(child);
    let off = blippd_samples(&probe(&pidfile), &["--once", "--control-socket", "none"]);
    assert_eq!(status(&off), "OFF");
}

/// A file of the shape of the original's `registrationconfig.json` (one
/// probe without an access point) passes `--check`, both probes listed.
#[test]
fn the_originals_registration_config_shape_passes_check() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/original/registrationconfig.json");
    let out = Command::new(blipp_tests::agent_bin("blippd"))
        .arg("-c")
        .arg(&fixture)
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut probes: Vec<&str> = text.lines().filter_map(|l| l.split('\t').next()).collect();
    probes.sort_unstable();
    assert_eq!(probes, ["nginx", "wireguard-lab"], "{text}");
}
