//! The commands blippd runs, as they see themselves: an unprivileged user
//! with only its primary group, no capabilities, `no_new_privs`, the
//! configured resource limits, and no way back to root through a setuid
//! program. And blippd itself, while it runs them: it holds no
//! `CAP_SETUID`/`CAP_SETGID`, its launcher alone does, and the launcher dies
//! with it.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use blipp_tests::{agent_bin, blippd_samples, cap_set, require_root, status_field};
use serde_json::{Value, json};

const CAP_SETGID: u64 = 1 << 6;
const CAP_SETUID: u64 = 1 << 7;
/// What a command's bounding set keeps (see
/// blipp-agent/src/source/command/sandbox.rs, `BOUNDING_KEPT`).
const CAP_NET_RAW: u64 = 1 << 13;

/// A directory under the cargo target directory (a file system that
/// honours setuid bits, checked) that every user may enter.
fn open_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut p = dir.as_path();
    while let Some(parent) = p.parent() {
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | 0o005)).unwrap();
        }
        p = parent;
    }
    dir
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_owned()
}

fn samples_of(probe: &Value, extra: &Value) -> Vec<Value> {
    let mut conf = json!({"probes": {"sandbox": probe}});
    if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    blippd_samples(
        &json!({"properties": {"configurations": conf}}),
        &["--once", "--control-socket", "none"],
    )
}

fn value(samples: &[Value], name: &str) -> u64 {
    let event = format!("ps:tools:blipp:test:{name}");
    let found: Vec<&Value> = samples.iter().filter(|s| s["eventType"] == event).collect();
    assert_eq!(found.len(), 1, "{name} in {samples:?}");
    found[0]["value"].as_u64().unwrap()
}

/// The fields a command prints about itself, and the regex turning them
/// into samples.
const FIELDS: [&str; 14] = [
    "uid", "euid", "gid", "egid", "groups", "ngroups", "eff", "prm", "inh", "bnd", "amb", "nnp",
    "cpu", "nofile",
];

#[test]
fn commands_run_unprivileged_with_the_configured_limits() {
    if !require_root("blippd switching its commands to the command user") {
        return;
    }
    let dir = open_dir("sandbox-self");
    // /proc/$$ is the shell itself; capability masks are printed in hex.
    let s = script(
        &dir,
        "self.sh",
        r#"st=/proc/$$/status
f() { awk -v k="$1:" '$1 == k { print $2 }' $st; }
f2() { awk -v k="$1:" '$1 == k { print $3 }' $st; }
groups=$(awk '$1 == "Groups:" { print $2 }' $st)
ngroups=$(awk '$1 == "Groups:" { print NF - 1 }' $st)
lim() { awk -v k="$1" 'index($0, k) == 1 { print $(NF - 2) }' /proc/$$/limits; }
printf 'uid=%d euid=%d gid=%d egid=%d groups=%d ngroups=%d\n' $(f Uid) $(f2 Uid) $(f Gid) $(f2 Gid) ${groups:-0} $ngroups
printf 'eff=%d prm=%d inh=%d bnd=%d amb=%d nnp=%d\n' 0x$(f CapEff) 0x$(f CapPrm) 0x$(f CapInh) 0x$(f CapBnd) 0x$(f CapAmb) $(f NoNewPrivs)
printf 'cpu=%d nofile=%d\n' $(lim "Max cpu time") $(lim "Max open files")
lim "Max address space"; lim "Max processes""#,
    );
    let mut regex = FIELDS
        .iter()
        .map(|f| format!("{f}=(?P<{f}>\\d+)"))
        .collect::<Vec<_>>()
        .join("\\s+");
    regex.push_str("\\s+(?P<as>\\d+)\\s+(?P<nproc>\\d+)");
    let mut event_types = serde_json::Map::new();
    for f in FIELDS.iter().chain(&["as", "nproc"]) {
        event_types.insert((*f).into(), format!("ps:tools:blipp:test:{f}").into());
    }
    let samples = samples_of(
        &json!({"probe_module": "cmd", "command": s, "regex": regex, "eventTypes": event_types}),
        &json!({"command_limits": {"cpu_seconds": 7, "address_space_mb": 300,
                                   "processes": 50, "open_files": 100}}),
    );
    let uid = value(&samples, "uid");
    assert_ne!(uid, 0, "the command runs as root: {samples:?}");
    assert_eq!(value(&samples, "euid"), uid);
    let gid = value(&samples, "gid");
    assert_eq!(value(&samples, "egid"), gid);
    assert_eq!(value(&samples, "ngroups"), 1, "only its primary group");
    assert_eq!(value(&samples, "groups"), gid);
    for set in ["eff", "prm", "inh", "amb"] {
        assert_eq!(value(&samples, set), 0, "Cap{set}");
    }
    // The bounding set keeps CAP_NET_RAW only, which no_new_privs makes
    // ungrantable: it lets file-capability programs (ping) start.
    assert_eq!(value(&samples, "bnd"), CAP_NET_RAW, "CapBnd");
    assert_eq!(value(&samples, "nnp"), 1, "NoNewPrivs");
    assert_eq!(value(&samples, "cpu"), 7);
    assert_eq!(value(&samples, "nofile"), 100);
    assert_eq!(value(&samples, "as"), 300 << 20);
    assert_eq!(value(&samples, "nproc"), 50);
}

/// Whether the file system holding `path` honours setuid bits.
fn suid_allowed(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let (_, options) = info
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            path.starts_with(f[4])
                .then(|| (f[4].len(), f[5].to_owned()))
        })
        .max()
        .unwrap();
    !options.split(',').any(|o| o == "nosuid")
}

#[test]
fn a_setuid_root_program_gives_no_root_back() {
    if !require_root("a setuid-root program run as a command") {
        return;
    }
    let dir = open_dir("sandbox-suid");
    assert!(
        suid_allowed(&dir),
        "{} is on a nosuid file system",
        dir.display()
    );
    let id = dir.join("id");
    std::fs::copy("/usr/bin/id", &id).unwrap();
    std::os::unix::fs::chown(&id, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o4755)).unwrap();
    // The control: without no_new_privs the copy does make nobody root,
    // so the check below can fail.
    let out = Command::new("setpriv")
        .args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
        .arg(&id)
        .arg("-u")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{out:?}");

    let samples = samples_of(
        &json!({"probe_module": "cmd", "command": format!("{} -u", id.display()),
                "regex": "^(?P<euid>\\d+)", "eventTypes": {"euid": "ps:tools:blipp:test:euid"}}),
        &json!({}),
    );
    assert_ne!(value(&samples, "euid"), 0, "euid=0: {samples:?}");

    if !blipp_tests::require_tool("sudo", "a command trying sudo") {
        return;
    }
    let samples = samples_of(
        &json!({"probe_module": "cmd",
                "command": "sh -c 'sudo -n true >/dev/null 2>&1; echo status=$?'",
                "regex": "status=(?P<s>\\d+)", "eventTypes": {"s": "ps:tools:blipp:test:s"}}),
        &json!({}),
    );
    assert_ne!(value(&samples, "s"), 0, "sudo -n true succeeded");
}

/// /proc/PID/status, if the process is there and not a zombie.
fn live_status(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    (status_field(&status, "State") != "Z").then_some(status)
}

fn parent(pid: u32) -> Option<u32> {
    live_status(pid).map(|s| status_field(&s, "PPid").parse().unwrap())
}

/// Every live process whose ancestors include `root`.
fn descendants(root: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let mut p = pid;
            for _ in 0..64 {
                match parent(p) {
                    Some(pp) if pp == root => return true,
                    Some(pp) if pp > 1 => p = pp,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

fn start(dir: &Path) -> Child {
    let config = dir.join("blipp.json");
    let s = script(dir, "slow.sh", "echo 1; sleep 0.3");
    let doc = json!({"properties": {"configurations": {"probes": {"slow": {
        "probe_module": "cmd", "command": s, "schedule_params": {"every": 0.5},
        "regex": "(?P<x>\\d+)", "eventTypes": {"x": "ps:tools:blipp:test:x"}}}}}});
    std::fs::write(&config, doc.to_string()).unwrap();
    Command::new(agent_bin("blippd"))
        .arg("-c")
        .arg(&config)
        .args(["--control-socket", "none", "--duration", "60", "--stdout"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn only_the_launcher_keeps_setuid_and_dies_with_blippd() {
    if !require_root("blippd's command launcher") {
        return;
    }
    let dir = open_dir("sandbox-launcher");
    let mut blippd = start(&dir);
    let pid = blippd.id();
    let log = || std::fs::read_to_string(dir.join("stderr")).unwrap();
    wait_for("the capability drop and a first sample", || {
        log().contains("capabilities only loading needed are dropped")
            && std::fs::read_to_string(dir.join("stdout"))
                .unwrap()
                .contains("ps:tools:blipp:test:x")
    });
    let status = live_status(pid).unwrap_or_else(|| panic!("blippd ended: {}", log()));
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(
            cap_set(&status, set) & (CAP_SETUID | CAP_SETGID),
            0,
            "blippd's {set}: {status}"
        );
    }
    let holds = |p: u32| {
        live_status(p).is_some_and(|s| cap_set(&s, "CapEff") & (CAP_SETUID | CAP_SETGID) != 0)
    };
    let children: Vec<u32> = descendants(pid)
        .into_iter()
        .filter(|&p| parent(p) == Some(pid))
        .collect();
    assert_eq!(children.len(), 1, "blippd has one child, the launcher");
    let launcher = children[0];
    assert!(holds(launcher), "the launcher holds them");
    // A supervisor (the launcher's child) holds them from its fork to its
    // setresuid, microseconds; once it is the command user it must not,
    // and nothing else may.
    for p in descendants(pid) {
        let Some(status) = live_status(p) else {
            continue;
        };
        let root = status_field(&status, "Uid") == "0";
        let supervisor_starting = parent(p) == Some(launcher) && root;
        assert!(
            p == launcher || supervisor_starting || !holds(p),
            "{p} holds CAP_SETUID/CAP_SETGID: {status}"
        );
    }
    let launcher_status = live_status(launcher).unwrap();
    assert_eq!(
        cap_set(&launcher_status, "CapEff"),
        CAP_SETUID | CAP_SETGID | 1 << 8,
        "SETUID, SETGID, SETPCAP: {launcher_status}"
    );
    assert!(
        log().contains(&format!(
            "command launcher started: commands run as the command user pid={launcher}"
        )),
        "{}",
        log()
    );

    blippd.kill().unwrap();
    blippd.wait().unwrap();
    wait_for("the launcher to die with blippd", || {
        live_status(launcher).is_none()
    });
}

#[test]
fn a_root_or_unknown_command_user_stops_blippd_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    for user in ["root", "blipp-no-such-user-here"] {
        let path = dir.path().join("blipp.json");
        let doc = json!({"properties": {"configurations": {"command_user": user}}});
        std::fs::write(&path, doc.to_string()).unwrap();
        let out = Command::new(agent_bin("blippd"))
            .arg("-c")
            .arg(&path)
            .args(["--once", "--control-socket", "none"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(
            stderr.trim(),
            format!(
                "blippd: {}: /properties/configurations/command_user: \"{user}\" is invalid: the name of an existing user other than root (uid 0)",
                path.display()
            )
        );
    }
}

/// Processes whose command line contains `marker`.
fn running_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .filter(|&pid| live_status(pid).is_some())
        .collect()
}

#[test]
fn through_the_launcher_big_output_arrives_and_a_timeout_kills_the_group() {
    if !require_root("commands run through blippd's launcher") {
        return;
    }
    let dir = open_dir("sandbox-launcher-output");
    // 10 MiB, far more than a datagram, then the number the regex wants.
    let big = script(
        &dir,
        "big.sh",
        "head -c 10485760 /dev/zero | tr '\\0' x; echo; echo last=917",
    );
    let samples = samples_of(
        &json!({"probe_module": "cmd", "command": big, "output_limit": 16_777_216,
                "regex": "last=(?P<n>\\d+)", "eventTypes": {"n": "ps:tools:blipp:test:n"}}),
        &json!({}),
    );
    assert_eq!(value(&samples, "n"), 917);

    let slow = script(&dir, "slow.sh", "sleep 918.25 & sleep 918.5; echo 1");
    let started = Instant::now();
    let samples = samples_of(
        &json!({"probe_module": "cmd", "command": slow, "command_timeout": 1,
                "regex": "(?P<n>\\d+)", "eventTypes": {"n": "ps:tools:blipp:test:n"}}),
        &json!({}),
    );
    assert!(samples.is_empty(), "{samples:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    wait_for("the timed-out command's group to be killed", || {
        running_with("918.25").is_empty() && running_with("918.5").is_empty()
    });
}
