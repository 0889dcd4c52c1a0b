//! The control plane end to end: a real blippd serving its control socket
//! in a temporary directory, driven by the real blippcmd (and by raw
//! connections where the server's checks are the point). What blippd
//! prints on stdout is the ground truth of what it reports.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use blipp_tests::{agent_bin, daemon, require_root};
use serde_json::{Value, json};

/// A blippd with its control socket in `dir`, stdout (samples) and stderr
/// (log) in files there; killed on drop.
struct Blippd {
    daemon: daemon::Blippd,
    dir: PathBuf,
}

impl Blippd {
    fn start(dir: &Path, config: &Value, args: &[&str]) -> Self {
        let cfg = dir.join("blipp.json");
        std::fs::write(&cfg, config.to_string()).unwrap();
        let socket = dir.join("run/blippd.sock");
        let mut all = vec!["--control-socket", socket.to_str().unwrap()];
        all.extend_from_slice(args);
        let b = Self {
            daemon: daemon::Blippd::start_printing(
                &cfg,
                &all,
                &dir.join("stderr"),
                &dir.join("stdout"),
            ),
            dir: dir.to_owned(),
        };
        b.wait_for(60, "the control socket and a first collection", || {
            b.cmd(&["status", "--json"]).status.success()
                && b.status()["probes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|p| p["collections"].as_u64() > Some(0) || p["state"] == "off")
        });
        b
    }

    fn pid(&self) -> u32 {
        u32::try_from(self.daemon.pid()).unwrap()
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("run/blippd.sock")
    }

    fn log(&self) -> String {
        self.daemon.log()
    }

    /// Every sample printed so far.
    fn samples(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default();
        // The last line may be half written.
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Timestamps of the samples of event type `event_type`, in order.
    fn times(&self, event_type: &str) -> Vec<u64> {
        let mut ts: Vec<u64> = self
            .samples()
            .iter()
            .filter(|s| s["eventType"] == event_type)
            .map(|s| s["ts"].as_u64().unwrap())
            .collect();
        ts.sort_unstable();
        ts.dedup();
        ts
    }

    /// Runs blippcmd against this blippd.
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new(agent_bin("blippcmd"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs blippcmd; it must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "blippcmd {args:?} failed: {}\nblippd log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

    fn probe(&self, name: &str) -> Value {
        self.status()["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no probe {name} in status"))
    }

    fn wait_for(&self, secs: u64, what: &str, cond: impl FnMut() -> bool) {
        daemon::wait_for(secs, what, || self.log(), cond);
    }

    /// Still running, and still collecting.
    fn assert_alive(&self) {
        let before = self.probe("cpu")["collections"].as_u64().unwrap();
        self.wait_for(20, "cpu to collect again", || {
            self.probe("cpu")["collections"].as_u64().unwrap() > before
        });
    }
}

fn now_us() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

/// cpu and mem every second, from /proc.
fn config() -> Value {
    json!({"properties": {"configurations": {
        "probe_defaults": {"schedule_params": {"every": 1}, "mode": "proc"},
        "probes": {"cpu": {"probe_module": "cpu"}, "mem": {"probe_module": "mem"}}
    }}})
}

const MEM_FREE: &str = "ps:tools:blipp:linux:memory:utilization:free";
const CPU_USER: &str = "ps:tools:blipp:linux:cpu:utilization:user";

#[test]
fn status_shows_the_probes_and_tail_returns_the_latest_samples() {
    let dir = tempfile::tempdir().unwrap();
    let b = Blippd::start(dir.path(), &config(), &[]);
    let table = b.ok(&["status"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("blippd "), "{table}");
    assert!(lines[0].contains("service ON"), "{table}");
    assert!(lines[1].starts_with("PROBE"), "{table}");
    for name in ["cpu", "mem"] {
        let row = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[1..5], [name, "running", "proc", "simple"], "{row}");
        assert_eq!(cells[5], "1s", "{row}");
    }
    let status = b.status();
    assert_eq!(status["pid"].as_u64(), Some(u64::from(b.pid())));
    let mem = b.probe("mem");
    assert_eq!(mem["mode"], "proc");
    assert_eq!(mem["schedule"]["collection_schedule"], "builtins.simple");
    assert!(mem["samples"].as_u64().unwrap() >= mem["collections"].as_u64().unwrap());
    assert!(mem["last_duration_ms"].as_f64().unwrap() > 0.0);

    // tail: the newest samples, oldest first, the same ones blippd printed.
    let tail = b.ok(&["tail", "mem", "3"]);
    let tail: Vec<Value> = tail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(tail.len(), 3, "{tail:?}");
    assert!(
        tail.windows(2)
            .all(|w| w[0]["ts"].as_u64() <= w[1]["ts"].as_u64())
    );
    let newest = tail.last().unwrap().clone();
    let printed = b.samples();
    b.wait_for(10, "the tailed sample on stdout", || {
        b.samples().contains(&newest)
    });
    drop(printed);
    let ts = newest["ts"].as_u64().unwrap();
    assert!(
        now_us() - ts < 5_000_000,
        "the tail is recent: {newest} at {}",
        now_us()
    );
    let err = b.cmd(&["tail", "gpu"]);
    assert!(!err.status.success());
    assert_eq!(
        String::from_utf8_lossy(&err.stderr).trim(),
        "blippcmd: no probe named \"gpu\" in the running configuration"
    );
    let err = b.cmd(&["tail", "mem", "1000"]);
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("expected at most 128"),
        "{err:?}"
    );
}

#[test]
fn stop_and_start_change_what_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let b = Blippd::start(dir.path(), &config(), &[]);
    assert_eq!(b.ok(&["probe", "stop", "mem"]), "stopped: mem\n");
    let stopped = now_us();
    assert_eq!(b.probe("mem")["state"], "off");
    // cpu goes on for 3 s; mem reports nothing measured after the stop.
    b.wait_for(20, "cpu samples 3 s after the stop", || {
        b.times(CPU_USER)
            .last()
            .is_some_and(|t| *t > stopped + 3_000_000)
    });
    let late: Vec<u64> = b
        .times(MEM_FREE)
        .into_iter()
        .filter(|t| *t > stopped)
        .collect();
    assert!(late.is_empty(), "mem measured after its stop: {late:?}");
    assert_eq!(
        b.ok(&["probe", "stop", "mem"]),
        "mem is already OFF\n",
        "stopping twice is harmless"
    );
    let config = b.ok(&["config"]);
    let config: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        config["properties"]["configurations"]["probes"]["mem"]["status"],
        "OFF"
    );

    assert_eq!(b.ok(&["probe", "start", "mem"]), "started: mem\n");
    let started = now_us();
    b.wait_for(20, "mem samples after the start", || {
        b.times(MEM_FREE).iter().filter(|t| **t > started).count() >= 2
    });
    assert_eq!(b.probe("mem")["state"], "running");

    // restart: a new task, collections counted from zero.
    let before = b.probe("cpu")["collections"].as_u64().unwrap();
    assert!(before >= 3, "{before}");
    assert_eq!(b.ok(&["probe", "restart", "cpu"]), "restarted: cpu\n");
    assert!(b.probe("cpu")["collections"].as_u64().unwrap() < before);
    let err = b.cmd(&["probe", "restart", "gpu"]);
    assert_eq!(
        String::from_utf8_lossy(&err.stderr).trim(),
        "blippcmd: no probe named \"gpu\" in the running configuration"
    );
}

/// The gaps between successive timestamps after `from`, in seconds.
fn gaps(ts: &[u64], from: u64) -> Vec<f64> {
    let after: Vec<u64> = ts.iter().copied().filter(|t| *t > from).collect();
    after
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 1e6)
        .collect()
}

#[test]
fn set_changes_a_probes_interval() {
    let dir = tempfile::tempdir().unwrap();
    let b = Blippd::start(dir.path(), &config(), &[]);
    let out = b.ok(&["set", "cpu", "schedule_params.every", "3"]);
    assert_eq!(out, "restarted: cpu\n");
    let changed = now_us();
    b.wait_for(40, "four cpu collections after the change", || {
        b.times(CPU_USER).iter().filter(|t| **t > changed).count() >= 4
    });
    let after = gaps(&b.times(CPU_USER), changed);
    assert!(
        after.iter().all(|g| (2.5..3.6).contains(g)),
        "gaps after every=3: {after:?}"
    );
    // mem was not touched: still every second.
    let mem = gaps(&b.times(MEM_FREE), changed);
    assert!(mem.len() >= 6, "{mem:?}");
    assert!(
        mem.iter().filter(|g| (0.5..1.6).contains(*g)).count() * 10 >= mem.len() * 8,
        "mem gaps: {mem:?}"
    );
    let status = b.status();
    assert_eq!(status["edits"], 1);
    assert_eq!(
        b.probe("cpu")["schedule"]["schedule_params"]["every"],
        json!(3)
    );
    // The same change as a pointer; deleting the key restores the default.
    b.ok(&[
        "config",
        "set",
        "/properties/configurations/probes/cpu/schedule_params",
        "{\"every\": 2}",
    ]);
    assert_eq!(
        b.probe("cpu")["schedule"]["schedule_params"]["every"],
        json!(2)
    );
}

#[test]
fn a_bad_change_is_refused_precisely_and_the_agent_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let b = Blippd::start(dir.path(), &config(), &[]);
    let refused = |args: &[&str], message: &str| {
        let out = b.cmd(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            message,
            "{args:?}"
        );
    };
    refused(
        &["set", "cpu", "schedule_params.every", "abc"],
        "blippcmd: control socket: /properties/configurations/probes/cpu/schedule_params/every: \"abc\" is invalid: expected a number",
    );
    // Issue 16: an interval below the floor, or a start in the far future.
    refused(
        &["set", "cpu", "schedule_params.every", "1e-9"],
        "blippcmd: control socket: /properties/configurations/probes/cpu/schedule_params/every: 1e-9 is invalid: expected a number of at least 0.1",
    );
    refused(
        &["set", "cpu", "schedule_params.start_time", "1e300"],
        "blippcmd: control socket: /properties/configurations/probes/cpu/schedule_params/start_time: 1e+300 is invalid: expected a number of at most 32503680000",
    );
    // The schema's list of modules is the registry's, in its order.
    let modules: Vec<&str> = blipp::probe::REGISTRY.iter().map(|s| s.module).collect();
    refused(
        &["set", "cpu", "probe_module", "gpu"],
        &format!(
            "blippcmd: control socket: /properties/configurations/probes/cpu/probe_module: \"gpu\" is invalid: expected one of {}",
            json!(modules)
        ),
    );
    refused(
        &[
            "config",
            "del",
            "/properties/configurations/probes/cpu/nothing",
        ],
        "blippcmd: control socket: /properties/configurations/probes/cpu/nothing: no such key in the running configuration",
    );
    refused(
        &[
            "config",
            "set",
            "/properties/configurations/spool_dir",
            "/tmp",
        ],
        "blippcmd: control socket: /properties/configurations/spool_dir: \"/tmp\" is invalid: only /status, /properties/configurations/probe_defaults/... and /properties/configurations/probes/... change at run time; service-wide settings are read at start-up (edit the file and restart blippd)",
    );
    // Valid for the schema, but the probe cannot be built: refused as a
    // whole, the running probe untouched.
    refused(
        &[
            "config",
            "set",
            "/properties/configurations/probes/ping",
            r#"{"probe_module": "cmd", "command": "true", "regex": "(?P<x>", "eventTypes": {"x": "ps:x"}}"#,
        ],
        "blippcmd: probe ping: configuration: /properties/configurations/probes/ping/regex: \"(?P<x>\" is invalid: a regular expression: unclosed group at character 1; nothing was changed",
    );
    assert_eq!(b.status()["edits"], 0, "nothing was kept");
    assert_eq!(b.probe("cpu")["state"], "running");
    b.assert_alive();
}

#[test]
fn a_non_root_peer_is_refused_by_its_credentials() {
    if !require_root("refusing a non-root peer of the control socket") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = Blippd::start(dir.path(), &config(), &[]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let run = b.socket().parent().unwrap().to_owned();
    assert_eq!(mode(&b.socket()), 0o600);
    assert_eq!(mode(&run), 0o700, "blippd made the socket's directory");
    // Relax both so that only the credential check stands in the way.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(b.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let bin = dir.path().join("blippcmd");
    blipp_tests::copy_program(&agent_bin("blippcmd"), &bin);
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&bin)
        .arg("--socket")
        .arg(b.socket())
        .args(["probe", "stop", "cpu"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "blippcmd: permission denied: uid 65534 is neither root nor blippd's user"
    );
    b.wait_for(10, "the refusal in the log", || {
        b.log().lines().any(|l| {
            l.contains("refused a client that is neither root nor blippd's user")
                && l.contains("uid=65534")
        })
    });
    assert_eq!(b.probe("cpu")["state"], "running", "nothing was stopped");
    b.assert_alive();
}

/// A raw connection to the socket.
fn connect(b: &Blippd) -> (BufReader<UnixStream>, UnixStream) {
    let s = UnixStream::connect(b.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    (BufReader::new(s.try_clone().unwrap()), s)
}

/// How many connections the server listening at `path` holds: in
/// /proc/net/unix an accepted socket carries the listener's path, a
/// client's none.
fn accepted(path: &Path) -> usize {
    let path = path.to_string_lossy();
    let table = std::fs::read_to_string("/proc/net/unix").unwrap();
    let with_path = table
        .lines()
        .filter(|l| l.split_whitespace().nth(7) == Some(path.as_ref()))
        .count();
    // Less the listener itself.
    with_path.saturating_sub(1)
}

fn answer(reader: &mut BufReader<UnixStream>) -> Value {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

#[test]
fn oversized_and_garbage_requests_are_refused_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let b = Blippd::start(dir.path(), &config(), &[]);

    // Garbage and strictness: answered, the connection stays usable.
    let (mut r, mut w) = connect(&b);
    for (line, expected) in [
        (
            &b"not json\n"[..],
            "invalid request: expected a JSON object",
        ),
        (b"\xff\xfe\n", "invalid request: not UTF-8"),
        (
            b"{\"request\":\"status\",\"as\":\"root\"}\n",
            "unknown field `as`",
        ),
        (
            b"{\"request\":\"exec\",\"command\":\"sh\"}\n",
            "unknown variant `exec`",
        ),
        (b"[\"status\"]\n", "expected a JSON object"),
    ] {
        w.write_all(line).unwrap();
        let a = answer(&mut r);
        let e = a["error"].as_str().unwrap_or_else(|| panic!("{a}"));
        assert!(e.contains(expected), "{e}");
    }
    w.write_all(b"{\"request\":\"status\"}\n").unwrap();
    assert_eq!(
        answer(&mut r)["ok"]["pid"].as_u64(),
        Some(u64::from(b.pid()))
    );

    // A line longer than the limit: refused unread, connection closed.
    let (mut r, mut w) = connect(&b);
    let big = vec![b'x'; 200 * 1024];
    // blippd stops reading at the limit and closes: the rest may not fit.
    let _ = w.write_all(&big);
    let a = answer(&mut r);
    assert_eq!(
        a["error"],
        "request longer than 65536 bytes; connection closed"
    );
    let mut rest = Vec::new();
    assert_eq!(r.read_to_end(&mut rest).unwrap_or(0), 0, "closed");

    b.assert_alive();
}

/// Issue 16: 8 idle root clients locked `status` out for 30 s, and 5000
/// refused connections wrote 4,878 WARN lines. Idle clients are closed
/// after a short timeout, a connection waits for a slot meanwhile, and a
/// flood beyond what waits is refused with a line per interval.
#[test]
fn idle_clients_cannot_lock_out_status_and_refusals_are_logged_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let b = Blippd::start(dir.path(), &config(), &[]);
    let held: Vec<_> = (0..8).map(|_| connect(&b)).collect();
    // blippd accepted all eight.
    b.wait_for(10, "the eight idle clients accepted", || {
        accepted(&b.socket()) >= 8
    });
    let start = Instant::now();
    let out = b.cmd(&["status"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "status waited {:?} behind idle clients",
        start.elapsed()
    );
    // The idle ones were closed: they read the end of the stream.
    for (mut r, _w) in held {
        let mut rest = String::new();
        assert_eq!(r.read_to_string(&mut rest).unwrap_or(0), 0, "{rest}");
    }

    // A flood: 8 served, 64 waiting, the rest told to retry at once.
    let flood: Vec<_> = (0..300)
        .map(|_| UnixStream::connect(b.socket()).unwrap())
        .collect();
    let mut busy = 0;
    for s in &flood {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut line = String::new();
        if BufReader::new(s).read_line(&mut line).is_ok()
            && line.contains("blippd serves 8 control clients at once; try again")
        {
            busy += 1;
        }
    }
    assert!(busy >= 200, "{busy} of 300 told to retry");
    drop(flood);
    b.wait_for(10, "status after the flood", || {
        b.cmd(&["status"]).status.success()
    });
    let lines = b
        .log()
        .lines()
        .filter(|l| l.contains("too many clients"))
        .count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} lines for {busy} refusals:\n{}",
        b.log()
    );
    b.assert_alive();
}

#[test]
fn reload_reads_the_file_again_and_drops_edits() {
    let dir = tempfile::tempdir().unwrap();
    let b = Blippd::start(dir.path(), &config(), &[]);
    b.ok(&["set", "cpu", "schedule_params.every", "2"]);
    let mut edited = config();
    edited["properties"]["configurations"]["probes"]["mem"]["status"] = json!("OFF");
    edited["properties"]["configurations"]["probes"]["numa"] = json!({"probe_module": "numa"});
    std::fs::write(dir.path().join("blipp.json"), edited.to_string()).unwrap();
    let out = b.ok(&["reload"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "started: numa",
            "stopped: mem",
            "restarted: cpu",
            &format!(
                "read {} again; 1 edit(s) made through the control socket dropped",
                dir.path().join("blipp.json").display()
            )
        ],
        "{out}"
    );
    assert_eq!(b.status()["edits"], 0);
    assert_eq!(
        b.probe("cpu")["schedule"]["schedule_params"]["every"],
        json!(1)
    );
    // A broken file is refused; what runs stays.
    std::fs::write(dir.path().join("blipp.json"), "{\"properties\": 3}").unwrap();
    let out = b.cmd(&["reload"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/properties: 3 is invalid"),
        "{out:?}"
    );
    assert_eq!(b.probe("numa")["state"], "running");
    b.assert_alive();
}

/// Issue 16: SIGHUP killed blippd, leaving its socket behind. It now
/// reads the file again, as `blippcmd reload` does, says so, and runs on;
/// a broken file is refused and what runs stays.
#[test]
fn sighup_reloads_the_file_and_blippd_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let b = Blippd::start(dir.path(), &config(), &[]);
    let mut edited = config();
    edited["properties"]["configurations"]["probes"]["mem"]["status"] = json!("OFF");
    std::fs::write(dir.path().join("blipp.json"), edited.to_string()).unwrap();
    let hup = || {
        let pid = i32::try_from(b.pid()).unwrap();
        // SAFETY: kill sends a signal to the blippd this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    };
    hup();
    b.wait_for(20, "the reload to stop mem", || {
        b.probe("mem")["state"] == "off"
    });
    b.wait_for(10, "the reload's log line", || {
        b.log().contains("SIGHUP: configuration reloaded")
    });
    assert!(b.socket().exists(), "the control socket is still there");
    b.assert_alive();

    std::fs::write(dir.path().join("blipp.json"), "{\"properties\": 3}").unwrap();
    hup();
    b.wait_for(20, "the refusal in the log", || {
        b.log()
            .contains("SIGHUP: the configuration was not reloaded")
    });
    assert_eq!(b.probe("mem")["state"], "off");
    assert!(b.socket().exists());
    b.assert_alive();
}

#[test]
fn log_level_changes_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let b = Blippd::start(dir.path(), &config(), &["-d", "INFO"]);
    assert!(!b.log().contains("DEBUG"), "{}", b.log());
    assert_eq!(b.ok(&["log-level", "debug"]), "log filter: debug\n");
    b.ok(&["status"]);
    b.wait_for(10, "a debug line", || b.log().contains(" DEBUG "));
    let out = b.cmd(&["log-level", "blipp=nonsense"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"blipp=nonsense\" is invalid"),
        "{out:?}"
    );
    assert_eq!(b.ok(&["log-level", "WARN"]), "log filter: warn\n");
}

/// The shell with standard input a pipe: the same commands, read line by
/// line, each prompt printed before its line's answer.
#[test]
fn shell_navigates_and_edits_the_running_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let b = Blippd::start(dir.path(), &config(), &[]);
    let mut child = Command::new(agent_bin("blippcmd"))
        .arg("--socket")
        .arg(b.socket())
        .arg("shell")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"cd properties/configurations/probes\nls\ncd mem\npwd\nset status OFF\nls\ncd /nowhere\n\
              mkdir schedule_params/x/y\nmkdir schedule_params\nmkdir schedule_params\nmkdir -p schedule_params\n\
              set 'schedule_params/every' 2\nls schedule_params\nmkdir -p kwargs/a\nset status\nrm x\ncd ../..\npwd\ncd\npwd\nexit\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mem = "blipp:/properties/configurations/probes/mem> ";
    assert_eq!(
        text,
        format!(
            "blipp:/> blipp:/properties/configurations/probes> cpu/\nmem/\n\
             blipp:/properties/configurations/probes> {mem}/properties/configurations/probes/mem\n\
             {mem}stopped: mem\n\
             {mem}probe_module: \"mem\"\nstatus: \"OFF\"\n\
             {mem}error: /nowhere: no such key\n\
             {mem}error: /properties/configurations/probes/mem/schedule_params/x: no such object (mkdir -p makes it)\n\
             {mem}ok: no probe changed\n\
             {mem}error: /properties/configurations/probes/mem/schedule_params: exists\n\
             {mem}{mem}ok: no probe changed\n\
             {mem}every: 2\n\
             {mem}error: control socket: /properties/configurations/probes/mem/kwargs/a: {{}} is invalid: unknown key \"a\" (known here: proc_dir)\n\
             {mem}error: usage: set KEY VALUE\n\
             {mem}error: rm: unknown command (help lists them)\n\
             {mem}blipp:/properties/configurations> /properties/configurations\n\
             blipp:/properties/configurations> blipp:/> /\n\
             blipp:/> \n"
        )
    );
    assert_eq!(b.probe("mem")["state"], "off");
    let cfg: Value = serde_json::from_str(&b.ok(&["config"])).unwrap();
    assert_eq!(
        cfg.pointer("/properties/configurations/probes/mem/schedule_params"),
        Some(&json!({"every": 2}))
    );
}

/// The shell on a terminal, as an operator types: Tab completes a path,
/// Ctrl-C cancels the line being typed (the shell stays), Ctrl-D leaves,
/// and the next session recalls the first one's lines.
#[test]
fn shell_on_a_terminal_cancels_with_ctrl_c_and_keeps_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let b = Blippd::start(dir.path(), &config(), &[]);
    let state = dir.path().join("state");
    let shell = || {
        let mut cmd = Command::new(agent_bin("blippcmd"));
        cmd.arg("--socket")
            .arg(b.socket())
            .arg("shell")
            .env("TERM", "xterm")
            .env("XDG_STATE_HOME", &state);
        blipp_tests::pty::Pty::spawn(cmd)
    };
    let mut first = shell();
    first.expect("blipp:/> ");
    first.send("cd properties/configurations/probes/me\x03");
    first.expect("blipp:/> ");
    first.send("pwd\r");
    first.expect("\r\n/\r\n");
    first.expect("blipp:/> ");
    first.send("cd properties/conf\t");
    first.expect("configurations/");
    first.send("probes/me\t");
    first.expect("probes/mem/");
    first.send("\r");
    first.expect("blipp:/properties/configurations/probes/mem> ");
    first.send("\x04");
    assert!(first.wait().success(), "{}", first.printed());
    let history = std::fs::read_to_string(state.join("blipp/history")).unwrap();
    let lines: Vec<&str> = history.lines().collect();
    assert!(
        lines.ends_with(&["pwd", "cd properties/configurations/probes/mem/"]),
        "{history:?}"
    );

    let mut second = shell();
    second.expect("blipp:/> ");
    // Up arrow: the last line of the first session.
    second.send("\x1b[A\r");
    second.expect("blipp:/properties/configurations/probes/mem> ");
    second.send("pwd\r");
    second.expect("/properties/configurations/probes/mem\r\n");
    second.send("exit\r");
    assert!(second.wait().success(), "{}", second.printed());
}

#[test]
fn a_probe_restarted_through_the_control_socket_stays_on_ebpf() {
    if !require_root("eBPF probes restarted through the control socket") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = json!({"properties": {"configurations": {
        "probe_defaults": {"schedule_params": {"every": 1}, "mode": "auto"},
        "probes": {"cpu": {"probe_module": "cpu"}, "disk": {"probe_module": "disk"},
                   "net": {"probe_module": "net"}}
    }}});
    let b = Blippd::start(dir.path(), &cfg, &[]);
    assert!(
        b.log()
            .contains("capabilities only loading needed are dropped"),
        "blippd gave up the loading capabilities: {}",
        b.log()
    );
    assert_eq!(b.probe("disk")["source"], "ebpf");
    assert_eq!(b.probe("net")["source"], "ebpf");
    let lo_bytes = "ps:tools:blipp:linux:network:utilization:bytes:in";
    let net_in = |b: &Blippd, after: u64| -> Vec<(u64, u64, bool)> {
        b.samples()
            .iter()
            .filter(|s| {
                s["eventType"] == lo_bytes
                    && s["subject"] == "port:lo"
                    && s["source"] == "ebpf"
                    && s["ts"].as_u64().unwrap() > after
            })
            .map(|s| {
                (
                    s["ts"].as_u64().unwrap(),
                    s["value"].as_u64().unwrap(),
                    s["reset"] == true,
                )
            })
            .collect()
    };
    b.wait_for(20, "eBPF lo bytes", || !net_in(&b, 0).is_empty());
    let before = net_in(&b, 0).last().copied().unwrap();

    assert_eq!(b.ok(&["probe", "restart", "disk"]), "restarted: disk\n");
    assert_eq!(
        b.ok(&["set", "net", "schedule_params.every", "2"]),
        "restarted: net\n"
    );
    let restarted = now_us();
    assert_eq!(b.probe("disk")["source"], "ebpf", "{}", b.log());
    assert_eq!(b.probe("net")["source"], "ebpf", "{}", b.log());
    // Traffic on lo, so that the counter moves.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(&[7u8; 65536]).unwrap();
    b.wait_for(20, "eBPF lo bytes after the restart", || {
        net_in(&b, restarted).len() >= 2
    });
    let after = net_in(&b, restarted);
    // The kernel's counters went on; the restarted probe reads the same
    // maps: its cumulative value did not restart from zero.
    assert!(
        after.iter().all(|(_, v, reset)| *v >= before.1 && !reset),
        "before {before:?}, after {after:?}"
    );
    let disk: Vec<Value> = b
        .ok(&["tail", "disk", "5"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        disk.iter()
            .any(|s| s["source"] == "ebpf" && s["ts"].as_u64().unwrap() > restarted),
        "{disk:?}"
    );
    assert!(
        !b.log().contains("falling back"),
        "no fallback: {}",
        b.log()
    );
}

/// The NOW cell of `label`'s row for `subject` in a plain `top` frame,
/// and the number of sparkline bars after it.
fn top_row(frame: &str, label: &str, subject: &str) -> Option<(String, usize)> {
    frame.lines().find_map(|l| {
        let rest = l.strip_prefix(label)?.trim_start().strip_prefix(subject)?;
        let cells: Vec<&str> = rest.split("  ").filter(|c| !c.trim().is_empty()).collect();
        // PROBE, SOURCE, NOW, then the sparkline.
        let now = cells.get(2)?.trim().to_owned();
        let bars = rest.chars().filter(|c| "▁▂▃▄▅▆▇█".contains(*c)).count();
        Some((now, bars))
    })
}

#[test]
fn top_prints_plain_frames_off_a_terminal_with_blippds_latest_values() {
    use blipp::control::top::quantities::Unit;
    use blipp::control::top::render::value;
    let dir = tempfile::tempdir().unwrap();
    let b = Blippd::start(dir.path(), &config(), &[]);
    const MEM_USED: &str = "ps:tools:blipp:linux:memory:utilization:used";
    // Three collections kept: the sparkline has three bars to draw.
    b.wait_for(20, "three collections of mem", || {
        b.probe("mem")["collections"].as_u64() >= Some(3)
    });
    let out = b.cmd(&["top", "-n", "2", "-d", "0.2"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains('\x1b'),
        "escape sequences off a terminal: {text:?}"
    );
    // Each frame starts with the agent's line and ends with a blank one.
    let frames: Vec<&str> = text.split("\n\nblippd ").collect();
    assert_eq!(frames.len(), 2, "two frames: {text}");
    for frame in &frames {
        assert!(frame.lines().all(|l| l.chars().count() <= 120), "{frame}");
    }
    let last = frames.last().unwrap();
    for probe in ["cpu", "mem"] {
        let row = last
            .lines()
            .find(|l| l.split_whitespace().next() == Some(probe))
            .unwrap_or_else(|| panic!("no row for {probe}: {last}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[1..3], ["running", "proc"], "{row}");
    }
    // Each NOW is one of the values blippd printed, as top formats it.
    for (label, event, unit) in [
        ("mem used", MEM_USED, Unit::Kilobytes),
        ("cpu user", CPU_USER, Unit::Fraction),
    ] {
        let (now, bars) =
            top_row(last, label, "node").unwrap_or_else(|| panic!("no {label} row: {last}"));
        assert!(bars >= 3, "{label}: {bars} bars: {last}");
        b.wait_for(10, "the value top showed among blippd's samples", || {
            b.samples()
                .iter()
                .filter(|s| s["eventType"] == event && s["subject"] == "node")
                .any(|s| value(unit, s["value"].as_f64().unwrap()) == now)
        });
    }
}

#[test]
fn top_on_a_terminal_redraws_in_place_and_restores_it_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let b = Blippd::start(dir.path(), &config(), &[]);
    let top = |args: &[&str]| {
        let mut cmd = Command::new(agent_bin("blippcmd"));
        cmd.arg("--socket")
            .arg(b.socket())
            .arg("top")
            .args(args)
            .env("TERM", "xterm");
        blipp_tests::pty::Pty::spawn(cmd)
    };
    let mut counted = top(&["-n", "3", "-d", "0.1"]);
    assert!(counted.wait().success(), "{}", counted.printed());
    let printed = counted.printed();
    // The alternate screen, three redraws from the top left, each clearing
    // what the previous one left below it, then the screen given back.
    assert!(printed.starts_with("\x1b[?1049h\x1b[?25l"), "{printed:?}");
    assert_eq!(printed.matches("\x1b[H").count(), 3, "{printed:?}");
    assert_eq!(printed.matches("\x1b[J").count(), 3, "{printed:?}");
    assert!(printed.ends_with("\x1b[?25h\x1b[?1049l"), "{printed:?}");
    assert!(printed.contains("cpu user"), "{printed:?}");

    let mut endless = top(&[]);
    endless.expect("\x1b[H");
    endless.expect("mem used");
    endless.send("\x03");
    assert!(endless.wait().success(), "{}", endless.printed());
    assert!(
        endless.printed().ends_with("\x1b[?25h\x1b[?1049l"),
        "{:?}",
        endless.printed()
    );
}
