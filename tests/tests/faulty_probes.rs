//! Issue 16: `--check` and start-up agree on which probes are faulty, and
//! one faulty probe no longer takes the others down. A probe whose
//! configuration is at fault is refused by `blippd --check`, `blippcmd
//! check` and `blippd --strict` with the same line, and without
//! `--strict` is reported as failed while the others run; a probe whose
//! host fails it is tried again until it can be built.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use blipp_tests::agent_bin;
use blipp_tests::daemon::{Blippd, blippcmd, wait_for};
use serde_json::{Value, json};

fn write_config(dir: &Path, name: &str, probes: &Value) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.json"));
    let doc = json!({"properties": {"configurations": {
        "probe_defaults": {"schedule_params": {"every": 1}},
        "probes": probes}}});
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

/// The lines `program` printed as its own (refusals), without its prefix.
fn refusals(out: &Output, program: &str) -> Vec<String> {
    let prefix = format!("{program}: ");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

fn run(program: &str, args: &[&str], config: &Path) -> Output {
    let mut cmd = Command::new(agent_bin(program));
    if program == "blippcmd" {
        cmd.arg("check").arg(config);
    } else {
        cmd.arg("-c").arg(config);
    }
    cmd.args(args).output().unwrap()
}

/// Probes whose configuration is at fault in a way only building them
/// shows: the six of the issue first, then others.
fn bad_probes() -> Vec<(&'static str, Value)> {
    let cmd = |extra: Value| {
        let mut p = json!({"probe_module": "cmd", "command": "echo 1",
            "regex": "(?P<n>\\d+)", "eventTypes": {"n": "ps:test:n"}});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    vec![
        ("cmd_regex", cmd(json!({"regex": "(?P<n>\\d+"}))),
        ("cmd_group", cmd(json!({"eventTypes": {"m": "ps:test:m"}}))),
        ("cmd_quote", cmd(json!({"command": "echo \"1"}))),
        (
            "cmd_object",
            cmd(json!({"command": "echo $v", "v": {"x": 1}})),
        ),
        (
            "process_regex",
            json!({"probe_module": "process", "regex": "(["}),
        ),
        (
            "process_pid",
            json!({"probe_module": "process", "pid": 1e20}),
        ),
        ("cmd_blank_type", cmd(json!({"eventTypes": {"n": " "}}))),
        (
            "nagios_quote",
            json!({"probe_module": "nagios", "command": "check_x \"a"}),
        ),
        (
            "nagios_nothing",
            json!({"probe_module": "nagios", "command": "$nothing"}),
        ),
        // An OFF probe is one `blippcmd probe start` away from running.
        ("off_but_bad", cmd(json!({"regex": "(", "status": "OFF"}))),
    ]
}

/// Probes whose configuration the schema refuses, before any is built:
/// the whole file is refused at its first fault, with one line.
fn schema_refused_probes() -> Vec<(&'static str, Value)> {
    vec![
        ("process_zero", json!({"probe_module": "process", "pid": 0})),
        (
            "process_two",
            json!({"probe_module": "process", "pid": 1, "process_name": "init"}),
        ),
        (
            "nagios_check",
            json!({"probe_module": "nagios", "command": "true", "check": "a b"}),
        ),
        (
            "port_refresh",
            json!({"probe_module": "port", "refresh": 1e9}),
        ),
    ]
}

/// Probes that build: every configuration of the table also has `mem`,
/// so that a start-up it accepts has something to run.
fn good_probes() -> Vec<(&'static str, Value)> {
    vec![
        (
            "cmd_ok",
            json!({"probe_module": "cmd", "command": "echo 1", "regex": "(?P<n>\\d+)",
                "eventTypes": {"n": "ps:test:n"}}),
        ),
        ("process_ok", json!({"probe_module": "process", "pid": 1})),
        (
            "numa_absent",
            json!({"probe_module": "numa", "sys_dir": "/nonexistent"}),
        ),
        ("cpu", json!({"probe_module": "cpu"})),
    ]
}

/// A small deterministic generator: the table is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// The issue's six examples alone, every other bad probe alone, each good
/// one alone, and generated mixes of up to three bad and good probes.
fn table() -> Vec<Value> {
    let mut bad = bad_probes();
    bad.extend(schema_refused_probes());
    let good = good_probes();
    let mut configs = Vec::new();
    for (name, p) in bad.iter().chain(&good) {
        configs.push(json!({ *name: p, "mem": {"probe_module": "mem"} }));
    }
    let mut rng = Lcg(16);
    for _ in 0..16 {
        let mut probes = json!({"mem": {"probe_module": "mem"}});
        for _ in 0..=rng.below(3) {
            let (name, p) = if rng.below(3) == 0 {
                &good[rng.below(good.len())]
            } else {
                &bad[rng.below(bad.len())]
            };
            probes[*name] = p.clone();
        }
        configs.push(probes);
    }
    configs
}

/// `blippd --check`, `blippcmd check` and `blippd --strict` refuse the
/// same configurations with the same lines, one per faulty probe, and
/// accept the same ones.
#[test]
fn check_and_strict_start_up_refuse_the_same_probes_with_the_same_lines() {
    let dir = tempfile::tempdir().unwrap();
    let bad_names: Vec<&str> = bad_probes().iter().map(|(n, _)| *n).collect();
    let schema_names: Vec<&str> = schema_refused_probes().iter().map(|(n, _)| *n).collect();
    let mut refused = 0;
    for (i, probes) in table().iter().enumerate() {
        let path = write_config(dir.path(), &format!("c{i}"), probes);
        let check = run("blippd", &["--check"], &path);
        let offline = run("blippcmd", &[], &path);
        let strict = run("blippd", &["--strict", "--once", "--mode", "proc"], &path);
        let lines = refusals(&check, "blippd");
        let names = probes.as_object().unwrap().keys();
        let faulty = if names.clone().any(|k| schema_names.contains(&k.as_str())) {
            1
        } else {
            names.filter(|k| bad_names.contains(&k.as_str())).count()
        };
        let context = format!(
            "{probes}\n--check: {check:?}\nblippcmd check: {offline:?}\n--strict: {strict:?}"
        );
        assert_eq!(lines.len(), faulty, "one line per fault: {context}");
        assert_eq!(lines, refusals(&offline, "blippcmd"), "{context}");
        assert_eq!(lines, refusals(&strict, "blippd"), "{context}");
        if faulty == 0 {
            assert_eq!(check.status.code(), Some(0), "{context}");
            assert_eq!(offline.status.code(), Some(0), "{context}");
            assert_eq!(strict.status.code(), Some(0), "{context}");
        } else {
            refused += 1;
            assert_eq!(check.status.code(), Some(2), "{context}");
            assert_eq!(offline.status.code(), Some(2), "{context}");
            assert_eq!(strict.status.code(), Some(2), "{context}");
            for line in &lines {
                assert!(
                    line.starts_with(&format!(
                        "{}: /properties/configurations/probes/",
                        path.display()
                    )) && line.contains(" is invalid: "),
                    "the file, the pointer, the value, the expectation: {line}"
                );
            }
        }
    }
    assert!(
        refused >= bad_names.len() + schema_names.len(),
        "the table refuses {refused}"
    );
}

/// The issue's six examples, line by line.
#[test]
fn the_six_examples_of_the_issue_are_refused_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let expected = [
        (
            "cmd_regex",
            "/regex: \"(?P<n>\\\\d+\" is invalid: a regular expression: unclosed group at character 1",
        ),
        (
            "cmd_group",
            "/eventTypes: \"m\" is invalid: the name of a group of the regex, written (?P<name>...)",
        ),
        (
            "cmd_quote",
            "/command: \"echo \\\"1\" is invalid: command: unterminated \" quote",
        ),
        (
            "cmd_object",
            "/v: {\"x\":1} is invalid: a string, number or boolean (the command's $v)",
        ),
        (
            "process_regex",
            "/regex: \"([\" is invalid: a regular expression: unclosed character class at character 2",
        ),
        (
            "process_pid",
            "/pid: 1e+20 is invalid: invalid type: floating point `1e+20`, expected i32",
        ),
    ];
    let bad = bad_probes();
    for (name, tail) in expected {
        let (_, p) = bad.iter().find(|(n, _)| *n == name).unwrap();
        let path = write_config(dir.path(), name, &json!({ name: p }));
        let out = run("blippd", &["--check"], &path);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert_eq!(
            refusals(&out, "blippd"),
            [format!(
                "{}: /properties/configurations/probes/{name}{tail}",
                path.display()
            )]
        );
    }
}

fn status(socket: &Path) -> Value {
    serde_json::from_str(&blippcmd(socket, &["status", "--json"])).unwrap()
}

fn probe(status: &Value, name: &str) -> Value {
    status["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap()
}

/// The agent probe's latest value of `event_type` for `subject`.
fn agent_figure(socket: &Path, subject: &str, event_type: &str) -> Option<Value> {
    let et = format!("ps:tools:blipp:agent:{event_type}");
    blippcmd(socket, &["tail", "agent", "64"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .rfind(|s| s["subject"] == subject && s["eventType"] == et.as_str())
        .map(|s| s["value"].clone())
}

/// Without `--strict`, a probe whose configuration is at fault is logged
/// once and shown as failed, one whose host fails it is retried until it
/// can be built, and the others run meanwhile.
#[test]
fn a_faulty_probe_is_reported_and_the_others_run() {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    std::fs::create_dir(&sys).unwrap();
    let (_, bad) = bad_probes().remove(0);
    let path = write_config(
        dir.path(),
        "blipp",
        &json!({
            "ping": bad,
            "mem": {"probe_module": "mem"},
            "numa": {"probe_module": "numa", "sys_dir": sys},
            "agent": {"probe_module": "agent"},
        }),
    );
    let check = run("blippd", &["--check"], &path);
    let line = refusals(&check, "blippd").remove(0);
    let socket = dir.path().join("run/blippd.sock");
    let b = Blippd::start(
        &path,
        &[
            "--control-socket",
            socket.to_str().unwrap(),
            "--mode",
            "proc",
        ],
        &dir.path().join("log"),
    );
    let log = || b.log();
    wait_for(30, "mem running, ping failed, numa retrying", log, || {
        socket.exists() && {
            let s = status(&socket);
            probe(&s, "mem")["collections"].as_u64() > Some(0)
                && probe(&s, "ping")["state"] == "failed"
                && probe(&s, "numa")["state"] == "retrying"
                && probe(&s, "numa")["attempts"].as_u64() >= Some(2)
        }
    });
    let s = status(&socket);
    assert_eq!(probe(&s, "ping")["last_error"], json!(line));
    let numa = probe(&s, "numa");
    assert!(
        numa["last_error"]
            .as_str()
            .unwrap()
            .contains("devices/system/node/online"),
        "{numa}"
    );
    assert!(numa["next_attempt"].as_u64().is_some(), "{numa}");
    let text = blippcmd(&socket, &["status"]);
    assert!(text.contains("numa: not built ("), "{text}");
    wait_for(
        30,
        "the agent probe counting two failed probes",
        log,
        || {
            agent_figure(&socket, "node", "probes:failed") == Some(json!(2))
                && agent_figure(&socket, "probe:ping", "probe:failed") == Some(json!(1))
        },
    );
    let refused = b
        .log()
        .lines()
        .filter(|l| l.contains("probe not started") && l.contains(&line))
        .count();
    assert_eq!(refused, 1, "logged once, with the line:\n{}", b.log());

    // The host comes right: the node list appears, and numa starts.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../blipp-agent/src/probe/numa/fixtures/sys/devices");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(&fixture)
        .arg(&sys)
        .status()
        .unwrap();
    assert!(copied.success());
    wait_for(30, "numa built at last and collecting", log, || {
        probe(&status(&socket), "numa")["collections"].as_u64() > Some(0)
    });
    assert!(b.log().contains("probe built at last"), "{}", b.log());
    wait_for(30, "the agent probe counting one failed probe", log, || {
        agent_figure(&socket, "node", "probes:failed") == Some(json!(1))
    });
    assert_eq!(probe(&status(&socket), "ping")["state"], "failed");

    // An edit of another probe is not refused because of the faulty one.
    blippcmd(&socket, &["set", "mem", "schedule_params.every", "2"]);
    // Starting the faulty one builds it again, and says why it cannot
    // (naming the running configuration rather than the file, which edits
    // and UNIS may have changed since).
    let out = Command::new(agent_bin("blippcmd"))
        .arg("--socket")
        .arg(&socket)
        .args(["probe", "start", "ping"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let (_, why) = line.split_once(": ").unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(why),
        "{out:?}"
    );
    assert_eq!(probe(&status(&socket), "ping")["state"], "failed");
    b.stop();
}

/// Waits for `cmd` to exit, at most `secs`.
fn exits_within(mut cmd: Command, secs: u64) -> Output {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let end = Instant::now() + Duration::from_secs(secs);
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if Instant::now() > end {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGKILL) };
            panic!("still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    waiter.join().unwrap()
}

/// blippd stops only when no probe can run: 2, with every line, when all
/// are the configuration's fault; a `--once` run whose only probe fails on
/// the host exits 1 (the eBPF trial of `cargo xtask install` relies on it).
#[test]
fn blippd_exits_only_when_no_probe_can_run() {
    let dir = tempfile::tempdir().unwrap();
    let bad = bad_probes();
    let path = write_config(
        dir.path(),
        "all_bad",
        &json!({ bad[0].0: bad[0].1, bad[5].0: bad[5].1 }),
    );
    let check = run("blippd", &["--check"], &path);
    let mut cmd = Command::new(agent_bin("blippd"));
    cmd.arg("-c")
        .arg(&path)
        .args(["--control-socket", "none", "--mode", "proc"]);
    let out = exits_within(cmd, 60);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let lines = refusals(&out, "blippd");
    assert_eq!(lines.len(), 2, "{out:?}");
    assert_eq!(lines, refusals(&check, "blippd"));

    let path = write_config(
        dir.path(),
        "host",
        &json!({"numa": {"probe_module": "numa", "sys_dir": "/nonexistent"}}),
    );
    let out = run("blippd", &["--once"], &path);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        refusals(&out, "blippd"),
        [
            "probe numa: reading /nonexistent/devices/system/node/online: No such file or directory (os error 2)"
        ]
    );
    assert_eq!(run("blippd", &["--check"], &path).status.code(), Some(0));
}

/// `--check` and `blippcmd check` build a probe without starting it: the
/// command it would run does not run and its data file is not created,
/// which a run then does.
#[test]
fn check_runs_no_command_and_creates_no_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    // Commands run as the command user (nobody), who must be able to
    // write here.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let ran = dir.path().join("ran");
    let data = dir.path().join("data.jsonl");
    let path = write_config(
        dir.path(),
        "blipp",
        &json!({"touch": {"probe_module": "cmd", "command": format!("touch {}", ran.display()),
            "regex": "(?P<n>\\d+)", "eventTypes": {"n": "ps:test:n"}},
            "mem": {"probe_module": "mem", "data_file": data}}),
    );
    for (program, args) in [("blippd", &["--check"][..]), ("blippcmd", &[][..])] {
        let out = run(program, args, &path);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(!ran.exists(), "{program} ran the command");
        assert!(!data.exists(), "{program} created the data file");
    }
    let out = run("blippd", &["--once"], &path);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(ran.exists() && data.exists(), "a run does both: {out:?}");
}
