//! blipp's measurements in UNIS as the per-probe control surface, as the
//! original BLiPP read them at every poll: an edit of one measurement's
//! configuration (its schedule, `status: OFF`) changes that one probe at
//! the next poll and is written back into the service, not overwritten; a
//! hostile edit is refused by the local trust policy and left for the
//! operator to see; with `-e use`, a measurement others create for the
//! service runs from the next poll on.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use blipp_tests::daemon::{Blippd, blippcmd, wait_for};
use blipp_tests::unis_scenario::{config, measured_since, points_per_probe, server, wait_for_data};
use blipp_tests::unis_server::{UnisServer, now_us};
use serde_json::{Value, json};

/// blipp's measurement of `probe`.
fn measurement(server: &UnisServer, probe: &str) -> Value {
    server
        .records("measurements")
        .into_iter()
        .find(|m| m["properties"]["blipp"]["probe"] == probe)
        .unwrap_or_else(|| panic!("no measurement of {probe}"))
}

/// Edits the configuration of blipp's measurement of `probe` as an
/// operator would (a `PUT` of the record's `configuration`).
fn edit_measurement(server: &UnisServer, probe: &str, edit: impl FnOnce(&mut Value)) {
    let m = measurement(server, probe);
    let mut configuration = m["configuration"].clone();
    edit(&mut configuration);
    let id = m["id"].as_str().unwrap();
    let status = server
        .put("measurements", id, &json!({"configuration": configuration}))
        .unwrap();
    assert_eq!(status, 204);
}

fn service_probe(server: &UnisServer, probe: &str) -> Value {
    server.records("services").remove(0)["properties"]["configurations"]["probes"][probe].clone()
}

/// `GET`s of the service so far: one per poll.
fn polls(server: &UnisServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.target.starts_with("/services/"))
        .count()
}

#[test]
fn an_edit_of_one_measurement_steers_its_probe_and_a_hostile_one_is_refused() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &server.url(),
        &json!({"properties": {"configurations": {"probes": {
            "cpu": {"probe_module": "cpu"},
            "mem": {"probe_module": "mem"},
            "net": {"probe_module": "net"}
        }}}}),
    );
    let socket = dir.path().join("ctl.sock");
    let blippd = Blippd::start(
        &cfg,
        &["--control-socket", socket.to_str().unwrap()],
        &dir.path().join("run.log"),
    );
    wait_for(
        60,
        "data of every probe",
        || blippd.log(),
        || points_per_probe(&server).len() == 3,
    );

    // The schedule of one measurement: that probe, and only it, follows at
    // the next poll; the service follows the measurement.
    edit_measurement(&server, "mem", |c| c["schedule_params"]["every"] = json!(3));
    wait_for(
        15,
        "the service to follow the mem measurement",
        || blippd.log(),
        || service_probe(&server, "mem")["schedule_params"]["every"] == 3,
    );
    let status: Value = serde_json::from_str(&blippcmd(&socket, &["status", "--json"])).unwrap();
    let mem = status["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "mem")
        .unwrap();
    assert!(
        mem["schedule"].to_string().contains('3'),
        "mem runs every 3 s: {mem}"
    );
    let seen = polls(&server);
    wait_for(
        15,
        "two more polls",
        || blippd.log(),
        || polls(&server) >= seen + 2,
    );
    assert_eq!(
        measurement(&server, "mem")["configuration"]["schedule_params"]["every"],
        3,
        "the edited measurement is not overwritten"
    );
    let restarts: Vec<String> = blippd
        .log()
        .lines()
        .filter(|l| l.contains("restarting it"))
        .map(str::to_owned)
        .collect();
    assert!(
        restarts.len() == 1 && restarts[0].contains("probe=mem"),
        "{restarts:?}"
    );

    // status OFF in one measurement: its data stops, the others' goes on.
    edit_measurement(&server, "mem", |c| c["status"] = json!("OFF"));
    wait_for(
        15,
        "the mem probe to stop",
        || blippd.log(),
        || {
            blippd
                .log()
                .contains("probe stopped by the configuration probe=mem")
        },
    );
    let off = now_us();
    // cpu and net measure 2 s past the stop: the window in which mem,
    // on the same schedule, would have too.
    wait_for_data(&server, &["cpu", "net"], off + 2_000_000, || blippd.log());
    let grew = measured_since(&server, &["cpu", "mem", "net"], off);
    assert!(!grew["mem"] && grew["cpu"] && grew["net"], "{grew:?}");
    assert_eq!(service_probe(&server, "mem")["status"], "OFF");

    // A hostile edit: cpu's measurement made to run a shell. Refused by
    // the local policy, named after the measurement; cpu runs on as it
    // was, and the measurement is left as written, for the operator.
    let marker = dir.path().join("PWNED");
    let cpu_id = measurement(&server, "cpu")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    edit_measurement(&server, "cpu", |c| {
        c["probe_module"] = json!("cmd");
        c["command"] = json!(format!("/bin/sh -c 'touch {}'", marker.display()));
        c["regex"] = json!("(?P<x>\\d+)");
        c["eventTypes"] = json!({"x": "ps:tools:blipp:test:x"});
    });
    let origin = format!("origin=UNIS measurement {cpu_id} pointer=/configuration ");
    wait_for(
        15,
        "the refusal",
        || blippd.log(),
        || blippd.log().contains(&origin),
    );
    let seen = polls(&server);
    wait_for(
        15,
        "two more polls",
        || blippd.log(),
        || polls(&server) >= seen + 2,
    );
    let status = blippcmd(&socket, &["status"]);
    let log = blippd.stop();
    assert!(
        status.contains(&format!("UNIS measurement {cpu_id}: /configuration: ")),
        "{status}"
    );
    assert_eq!(log.matches(&origin).count(), 1, "logged once:\n{log}");
    let refusal = log.lines().find(|l| l.contains(&origin)).unwrap();
    assert!(
        refusal.contains("/bin/sh") && refusal.contains("trust.programs"),
        "{refusal}"
    );
    assert!(!marker.exists());
    assert_eq!(
        measurement(&server, "cpu")["configuration"]["probe_module"],
        "cmd"
    );
    assert_eq!(service_probe(&server, "cpu")["probe_module"], "cpu");
    assert_eq!(server.records("measurements").len(), 3);
}

#[test]
fn with_e_use_a_measurement_others_create_runs_from_the_next_poll() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &server.url(),
        &json!({"properties": {"configurations": {"probes": {
            "cpu": {"probe_module": "cpu"}
        }}}}),
    );
    let blippd = Blippd::start(&cfg, &["-e", "use"], &dir.path().join("run.log"));
    wait_for(
        60,
        "data of cpu",
        || blippd.log(),
        || points_per_probe(&server).contains_key("cpu"),
    );
    let service = server.records("services").remove(0);
    let theirs = json!({"id": "theirs", "service": service["selfRef"], "eventTypes": [],
        "configuration": {"probe_module": "mem", "name": "their-mem", "schedule_params": {"every": 1}}});
    assert_eq!(server.post("measurements", &theirs).unwrap(), 201);
    let href = format!("{}/measurements/theirs", server.url());
    wait_for(
        20,
        "data of their measurement",
        || blippd.log(),
        || {
            points_per_probe(&server).contains_key("their-mem")
                && server
                    .records("metadata")
                    .iter()
                    .any(|m| m["parameters"]["measurement"]["href"] == href.as_str())
        },
    );
    let log = blippd.stop();
    assert!(
        log.contains("running a measurement made by others"),
        "{log}"
    );
    assert_eq!(
        server
            .records("measurements")
            .iter()
            .find(|m| m["id"] == "theirs")
            .unwrap()["configuration"]["name"],
        "their-mem",
        "left as they made it"
    );
}
