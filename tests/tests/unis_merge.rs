//! The service in UNIS against the local file across restarts: a value
//! blippd wrote into UNIS itself does not later override an edit of the
//! file, a value someone changed in UNIS wins over the file (the original's
//! rule), and a key changed in both is logged as a conflict, UNIS winning.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::Path;

use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::real_schemas;
use blipp_tests::unis_server::{Options, UnisServer};
use serde_json::{Value, json};

fn write_config(dir: &Path, url: &str, poll: f64, backoff: f64) -> std::path::PathBuf {
    let doc = json!({"properties": {"configurations": {
        "unis_url": url,
        "unis_poll_interval": poll,
        "unis_max_backoff": backoff,
        "spool_dir": dir.join("spool").display().to_string(),
        "probes": {"mem": {"probe_module": "mem", "schedule_params": {"every": 1}}}
    }}});
    let path = dir.join("blipp.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

/// Runs blippd on `cfg` until it has written its service record; returns
/// that record's configurations and blippd's log.
fn run_once(server: &UnisServer, cfg: &Path, log: &Path) -> (Value, String, Blippd) {
    let from = server.requests().len();
    let blippd = Blippd::start(cfg, &["--control-socket", "none"], log);
    let written = || {
        server.requests()[from..]
            .iter()
            .find(|r| {
                r.target.starts_with("/services") && matches!(r.method.as_str(), "PUT" | "POST")
            })
            .and_then(|r| r.body.clone())
    };
    wait_for(
        30,
        "the service written",
        || blippd.log(),
        || written().is_some(),
    );
    let conf = written().unwrap()["properties"]["configurations"].clone();
    (conf, blippd.log(), blippd)
}

fn set_in_unis(server: &UnisServer, key: &str, value: Value) {
    let service = server.records("services").remove(0);
    let mut props = service["properties"].clone();
    props["configurations"][key] = value;
    let id = service["id"].as_str().unwrap();
    assert_eq!(
        server
            .put("services", id, &json!({"properties": props}))
            .unwrap(),
        204
    );
}

#[test]
fn a_value_blippd_wrote_itself_does_not_override_the_file_but_a_change_in_unis_does() {
    let Some(schemas) = real_schemas("merging the service in UNIS with the local file") else {
        return;
    };
    let server = UnisServer::start(Options {
        schemas: Some(schemas),
        ..Options::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = |n: u32| dir.path().join(format!("run{n}.log"));

    // First start: the file's values go into UNIS.
    let cfg = write_config(dir.path(), &server.url(), 300.0, 60.0);
    let (conf, _, b) = run_once(&server, &cfg, &log(1));
    b.stop();
    assert_eq!(conf["unis_poll_interval"].as_f64(), Some(300.0), "{conf}");

    // The operator edits the file: its value wins over the stale one
    // blippd itself left in UNIS, and the new interval is followed at once.
    let cfg = write_config(dir.path(), &server.url(), 1.0, 60.0);
    let (conf, _, b) = run_once(&server, &cfg, &log(2));
    assert_eq!(conf["unis_poll_interval"].as_f64(), Some(1.0), "{conf}");
    let id = server.records("services")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let polls = || {
        server
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.target == format!("/services/{id}"))
            .count()
    };
    let before = polls();
    wait_for(
        10,
        "three polls at the new interval",
        || b.log(),
        || polls() >= before + 3,
    );
    b.stop();

    // Someone changes a value in UNIS: it wins over the file.
    set_in_unis(&server, "unis_max_backoff", json!(120));
    let (conf, _, b) = run_once(&server, &cfg, &log(3));
    b.stop();
    assert_eq!(conf["unis_max_backoff"].as_f64(), Some(120.0), "{conf}");
    assert_eq!(conf["unis_poll_interval"].as_f64(), Some(1.0), "{conf}");

    // Both change it: UNIS wins, and the conflict is logged.
    set_in_unis(&server, "unis_max_backoff", json!(150));
    let cfg = write_config(dir.path(), &server.url(), 1.0, 90.0);
    let (conf, _, b) = run_once(&server, &cfg, &log(4));
    let log4 = b.stop();
    assert_eq!(conf["unis_max_backoff"].as_f64(), Some(150.0), "{conf}");
    let conflict = log4
        .lines()
        .find(|l| l.contains("changed both in UNIS and in the local file"))
        .unwrap_or_else(|| panic!("no conflict logged:\n{log4}"));
    assert!(
        conflict.contains("pointer=/properties/configurations/unis_max_backoff"),
        "{conflict}"
    );
}
