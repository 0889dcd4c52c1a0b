//! Issue 15 against the UNIS/MS test server: whoever can write blipp's
//! service record in UNIS cannot make a host run a program, open or write
//! a file, or send data anywhere the local file did not allow; what they
//! may change (a schedule) still applies, and every refused part is logged
//! once with its pointer and shown by `blippcmd status`.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::Path;

use blipp_tests::daemon::{Blippd, blippcmd, wait_for};
use blipp_tests::unis_server::{UnisServer, free_port};
use blipp_tests::{agent_bin, require_root, require_tool};
use serde_json::{Value, json};

fn server() -> Option<UnisServer> {
    blipp_tests::schema_checked_server("the trust policy's tests against the UNIS/MS test server")
}

/// A configuration file: cpu and mem every second, UNIS polled every
/// second, plus `extra`.
fn config(dir: &Path, url: &str, extra: &Value) -> std::path::PathBuf {
    let mut doc = json!({
        "properties": {"configurations": {
            "unis_url": url,
            "unis_poll_interval": 1,
            "unis_max_backoff": 2,
            "spool_dir": dir.join("spool").display().to_string(),
            "probe_defaults": {"schedule_params": {"every": 1}},
            "probes": {"cpu": {"probe_module": "cpu"}, "mem": {"probe_module": "mem"}}
        }}
    });
    blipp::config::merge::merge(&mut doc, extra.clone());
    let path = dir.join("blipp.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

fn measurement_every(server: &UnisServer, probe: &str) -> Option<f64> {
    server
        .records("measurements")
        .iter()
        .find(|m| m["configuration"]["name"] == probe)
        .and_then(|m| m["configuration"]["schedule_params"]["every"].as_f64())
}

fn cmd_probe(command: &str) -> Value {
    json!({"probe_module": "cmd", "command": command, "regex": "(?P<x>\\d+)",
           "eventTypes": {"x": "ps:tools:blipp:test:x"}})
}

#[test]
fn unis_cannot_run_open_or_send_anywhere_the_local_file_did_not_allow() {
    if !require_root("blippd as root following a service record in UNIS")
        || !require_tool(
            "strace",
            "watching blippd's execve, openat and connect calls",
        )
    {
        return;
    }
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &server.url(),
        &json!({"properties": {"configurations": {"trust": {"urls": ["http://127.0.0.3:1/"]}}}}),
    );
    let socket = dir.path().join("ctl.sock");
    let trace = dir.path().join("strace");
    let marker_cmd = dir.path().join("PWNED-cmd");
    let marker_nagios = dir.path().join("PWNED-nagios");
    let written = format!("/etc/blipp-trust-test-{}.json", std::process::id());
    // A port that nothing listens on: connecting there is what is looked
    // for, not a delivery.
    let elsewhere = format!("http://127.0.0.2:{}", free_port().unwrap());
    let blippd = Blippd::start_under(
        &[
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=execve,openat,connect,mkdir",
            "-o",
            trace.to_str().unwrap(),
        ],
        &cfg,
        &["--control-socket", socket.to_str().unwrap()],
        &dir.path().join("run.log"),
    );
    wait_for(
        60,
        "registration",
        || blippd.log(),
        || measurement_every(&server, "mem").is_some(),
    );

    server.edit_service(|p| {
        let probes = &mut p["configurations"]["probes"];
        probes["pwn"] = cmd_probe(&format!("touch {}", marker_cmd.display()));
        probes["check"] = json!({"probe_module": "nagios",
            "command": format!("/usr/bin/touch {}", marker_nagios.display())});
        probes["cpu"]["data_file"] = json!(written);
        probes["mem"]["proc_dir"] = json!("/root");
        probes["mem"]["ms_url"] = json!(elsewhere);
        // What UNIS may change, in the same update.
        probes["cpu"]["schedule_params"] = json!({"every": 2});
    });
    wait_for(
        30,
        "the schedule change to apply",
        || blippd.log(),
        || measurement_every(&server, "cpu") == Some(2.0),
    );
    let refused = [
        "/properties/configurations/probes/pwn",
        "/properties/configurations/probes/check",
        "/properties/configurations/probes/cpu/data_file",
        "/properties/configurations/probes/mem/proc_dir",
        "/properties/configurations/probes/mem/ms_url",
    ];
    wait_for(
        15,
        "every refusal in the log",
        || blippd.log(),
        || {
            let log = blippd.log();
            refused
                .iter()
                .all(|p| log.contains(&format!("pointer={p} ")))
        },
    );
    // Several polls later, each is still logged once.
    let polls = |s: &UnisServer| {
        s.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.target.starts_with("/services/"))
            .count()
    };
    let seen = polls(&server);
    wait_for(
        20,
        "three more polls of the service",
        || blippd.log(),
        || polls(&server) >= seen + 3,
    );
    let status = blippcmd(&socket, &["status"]);
    let log = blippd.stop();
    for p in refused {
        assert_eq!(
            log.matches(&format!("pointer={p} ")).count(),
            1,
            "{p}:\n{log}"
        );
        assert!(
            status.contains(&format!(": {p}: ")),
            "status lacks {p}:\n{status}"
        );
    }
    assert!(
        status.contains("REFUSED by the local trust policy (5)"),
        "{status}"
    );
    let pwn = log
        .lines()
        .find(|l| l.contains("pointer=/properties/configurations/probes/pwn "))
        .unwrap();
    assert!(
        pwn.contains("/usr/bin/touch") && pwn.contains("trust.programs"),
        "{pwn}"
    );

    // Nothing refused was spawned, opened, written or connected to.
    assert!(!marker_cmd.exists() && !marker_nagios.exists());
    assert!(!Path::new(&written).exists());
    let calls = std::fs::read_to_string(&trace).unwrap();
    let bin = agent_bin("blippd").display().to_string();
    let execs: Vec<&str> = calls
        .lines()
        .filter(|l| {
            l.contains("execve(")
                && !l.contains(&format!("execve(\"{bin}\""))
                && !l.contains("execve(\"/proc/self/exe\"")
        })
        .collect();
    assert!(execs.is_empty(), "blippd executed {execs:?}");
    // The mem probe would read /root/meminfo; the loader's own look-ups
    // under /root/.rustup are not blippd's doing.
    for what in [
        "\"/root\"",
        "\"/root/meminfo\"",
        &format!("\"{written}"),
        "127.0.0.2",
    ] {
        let hits: Vec<&str> = calls.lines().filter(|l| l.contains(what)).collect();
        assert!(hits.is_empty(), "{what}: {hits:?}");
    }
    // What blippd writes back as its configuration (at its next start)
    // holds none of it, nor the local policy.
    let before = server.requests().len();
    let again = Blippd::start(
        &cfg,
        &["--control-socket", "none"],
        &dir.path().join("again.log"),
    );
    let written_back = || {
        server.requests()[before..]
            .iter()
            .rev()
            .find(|r| r.method == "PUT" && r.target.starts_with("/services/"))
            .and_then(|r| r.body.clone())
    };
    wait_for(
        30,
        "the service written back",
        || again.log(),
        || written_back().is_some(),
    );
    again.stop();
    let body = written_back().unwrap();
    let conf = &body["properties"]["configurations"];
    assert!(conf.get("trust").is_none(), "{body}");
    assert!(
        conf["probes"].get("pwn").is_none() && conf["probes"].get("check").is_none(),
        "{body}"
    );
    assert!(conf["probes"]["cpu"].get("data_file").is_none(), "{body}");
    assert!(conf["probes"]["mem"].get("proc_dir").is_none(), "{body}");
    assert!(conf["probes"]["mem"].get("ms_url").is_none(), "{body}");
    assert_eq!(
        conf["probes"]["cpu"]["schedule_params"]["every"], 2,
        "{body}"
    );
}

#[test]
fn a_program_the_local_file_allows_runs_from_unis_as_an_unprivileged_user() {
    if !require_root("blippd as root running a command from UNIS") {
        return;
    }
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &server.url(),
        &json!({"properties": {"configurations": {"trust": {"programs": ["/usr/bin/cat"]}}}}),
    );
    let blippd = Blippd::start(
        &cfg,
        &["--control-socket", "none"],
        &dir.path().join("run.log"),
    );
    wait_for(
        60,
        "registration",
        || blippd.log(),
        || measurement_every(&server, "mem").is_some(),
    );
    let field = |name: &str| format!("{name}:\\s+(?P<{}>[0-9a-f]+)", name.to_lowercase());
    let regex = ["Uid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .map(field)
        .join(".*");
    server.edit_service(|p| {
        p["configurations"]["probes"]["whoami"] = json!({
            "probe_module": "cmd", "command": "cat /proc/self/status", "regex": regex,
            "eventTypes": {"uid": "ps:tools:blipp:test:uid", "capinh": "ps:tools:blipp:test:capinh",
                "capprm": "ps:tools:blipp:test:capprm", "capeff": "ps:tools:blipp:test:capeff",
                "capbnd": "ps:tools:blipp:test:capbnd", "capamb": "ps:tools:blipp:test:capamb"}});
    });
    // The command's report, as the MS received it.
    let mids_of = |event: &str| -> Vec<String> {
        server
            .records("metadata")
            .iter()
            .filter(|m| m["eventType"] == event)
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect()
    };
    let value = |event: &str| -> Option<Value> {
        let data = server.data();
        mids_of(event).iter().find_map(|mid| {
            data.get(mid)
                .and_then(|d| d.last())
                .map(|d| d["value"].clone())
        })
    };
    wait_for(
        30,
        "the uid the command ran with",
        || blippd.log(),
        || value("ps:tools:blipp:test:uid").is_some(),
    );
    let log = blippd.stop();
    assert!(!log.contains("refused by the local trust policy"), "{log}");
    let uid = value("ps:tools:blipp:test:uid").unwrap();
    assert!(uid.as_u64().is_some_and(|u| u != 0), "uid {uid}:\n{log}");
    // A set with any capability prints hex digits beyond 0-9 or a non-zero
    // number; either way not the sample 0.
    for set in ["capinh", "capprm", "capeff", "capamb"] {
        let v = value(&format!("ps:tools:blipp:test:{set}"));
        assert_eq!(v, Some(json!(0)), "{set}: {v:?}\n{log}");
    }
    // cat carries no file capabilities: its bounding set is empty too.
    let bounding = value("ps:tools:blipp:test:capbnd");
    assert_eq!(bounding, Some(json!(0)), "capbnd: {bounding:?}\n{log}");
}
