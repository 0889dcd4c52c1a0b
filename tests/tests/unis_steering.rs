//! blippd steered through UNIS: a configuration changed in the service
//! record is followed at the next poll (only the changed probe restarts),
//! and service status OFF stops the data, ON starts it again.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::Duration;

use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::unis_scenario::{
    config, latest_per_probe, measured_since, points_per_probe, server, set_status,
};
use blipp_tests::unis_server::now_us;
use serde_json::json;

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
