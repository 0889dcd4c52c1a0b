//! blippd steered through UNIS: a configuration changed in the service
//! record is followed at the next poll (only the changed probe restarts),
//! and service status OFF stops the data, ON starts it again.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::unis_scenario::{
    config, latest_per_probe, measured_since, points_per_probe, server, set_status, wait_for_data,
    wait_for_polls,
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
    // Two more polls: time for any other (wrong) restart, of this poll's
    // reconcile or of the next ones, to show.
    wait_for_polls(&server, 2, || blippd.log());
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
    // Until cpu and net, every second as disk was, have delivered what
    // they measured 2 s after it stopped: disk would have measured too.
    wait_for_data(&server, &["cpu", "net"], disk_off + 2_000_000, || {
        blippd.log()
    });
    let grew = measured_since(&server, &all, disk_off);
    assert!(!grew["disk"], "{grew:?}");

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
    // Nothing measures now; blippd goes on polling: three polls (3 s) for
    // data to show that should not.
    wait_for_polls(&server, 3, || blippd.log());
    let grew = measured_since(&server, &all, off);
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
    wait_for_data(&server, &["cpu", "net"], on + 2_000_000, || blippd.log());
    let grew = measured_since(&server, &["disk"], disk_off);
    assert!(!grew["disk"], "disk stays OFF");
    blippd.stop();
    assert_eq!(server.records("services").len(), 1);
    assert_eq!(
        server.records("measurements").len(),
        4,
        "changes update the measurements, they do not add any"
    );
}
