//! blippd under the identity and capabilities the shipped unit
//! (packaging/systemd/blippd.service) gives it: a user other than root
//! holding the unit's `AmbientCapabilities=`, bounded to its
//! `CapabilityBoundingSet=`, with its `NoNewPrivileges=`, reproduced with
//! setpriv from the unit file as it is now (the unit's `User=` where that
//! account exists here, else [`STAND_IN_UID`], which no account has). Once the re-executed image has
//! dropped everything it does not use after start-up, its effective,
//! permitted and bounding sets hold exactly what it keeps (see
//! blipp-agent/src/source/ebpf/caps.rs) of the unit's set, and it logged
//! no failure to drop (dropping from the bounding set needs `CAP_SETPCAP`,
//! which the unit must therefore grant). The unit must also grant
//! `CAP_SETUID` and `CAP_SETGID`, which the command launcher keeps.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use blipp_tests::{agent_bin, cap_set, json_lines, require_root, status_field};
use serde_json::json;

/// What blippd keeps after start-up (see
/// blipp-agent/src/source/ebpf/caps.rs), in setpriv's names; `bpf` only
/// where the kernel wants it for map reads.
const KEPT: [&str; 2] = ["sys_ptrace", "dac_read_search"];
/// What the command launcher needs, which the unit must grant.
const LAUNCHER: [&str; 3] = ["setuid", "setgid", "setpcap"];
const DROPPED_LOG: &str = "capabilities only loading needed are dropped";
const KEPT_BPF_LOG: &str = "this kernel wants CAP_BPF to read maps";
const NOT_DROPPED_LOG: &str = "could not drop capabilities";
const INHERITED: &str = "inherited from the image that loaded them";
/// The unit's user where `cargo xtask install` has not created it: any
/// uid but root's shows the same capability rules.
const STAND_IN_UID: u32 = 61_999;
/// `CAP_SYS_RESOURCE`'s number (linux/capability.h).
const SYS_RESOURCE: u32 = 24;

fn unit_file() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/systemd/blippd.service");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value of the unit's only `key=` line.
fn setting<'a>(unit: &'a str, key: &str) -> &'a str {
    let values: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect();
    assert_eq!(values.len(), 1, "one {key}= line in the unit: {values:?}");
    values[0].trim()
}

/// The unit's capability set `key` in setpriv's names (`CAP_SYS_ADMIN` is
/// `sys_admin`).
fn unit_caps(unit: &str, key: &str) -> Vec<String> {
    setting(unit, key)
        .split_whitespace()
        .map(|c| {
            c.strip_prefix("CAP_")
                .unwrap_or_else(|| panic!("not a capability: {c}"))
                .to_ascii_lowercase()
        })
        .collect()
}

/// Capability names by number, as setpriv knows them.
fn capability_names() -> Vec<String> {
    let out = Command::new("setpriv").arg("--list-caps").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn mask(names: &[String], which: &[String]) -> u64 {
    which.iter().fold(0, |m, c| {
        let bit = names
            .iter()
            .position(|n| n == c)
            .unwrap_or_else(|| panic!("setpriv does not know {c}"));
        m | 1 << bit
    })
}

fn named(names: &[String], mask: u64) -> Vec<&str> {
    names
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & 1 << bit != 0)
        .map(|(_, n)| n.as_str())
        .collect()
}

/// The uid and gid blippd runs as under the unit.
fn unit_user(unit: &str) -> (u32, u32) {
    let out = Command::new("getent")
        .args(["passwd", setting(unit, "User")])
        .output()
        .unwrap();
    let entry = String::from_utf8_lossy(&out.stdout);
    let field = |i: usize| entry.split(':').nth(i).and_then(|f| f.trim().parse().ok());
    match (out.status.success(), field(2), field(3)) {
        (true, Some(uid), Some(gid)) => (uid, gid),
        _ => (STAND_IN_UID, STAND_IN_UID),
    }
}

/// setpriv's `+a,+b` for a capability list.
fn plus(caps: &[String]) -> String {
    caps.iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// blippd with the disk probe in `ebpf` mode as the unit's user with its
/// ambient capabilities, bounding set, memlock limit and no-new-privileges
/// setting, for `secs`; stdout and stderr go to files in `dir`. setpriv
/// executes blippd: the child's PID is blippd's.
fn start_as_the_unit(unit: &str, dir: &tempfile::TempDir, secs: u32) -> Child {
    let config = dir.path().join("blipp.json");
    let doc = json!({"properties": {"configurations": {
        "probe_defaults": {"schedule_params": {"every": 1}, "mode": "ebpf"},
        "probes": {"disk": {"probe_module": "disk"}}
    }}});
    std::fs::write(&config, doc.to_string()).unwrap();
    let (uid, gid) = unit_user(unit);
    let ambient = plus(&unit_caps(unit, "AmbientCapabilities"));
    // prlimit sets the unit's memlock limit and executes setpriv, which
    // executes blippd. Raising the hard limit needs CAP_SYS_RESOURCE,
    // which some machines do not give even root (kernels from 5.11 on do
    // not charge maps to memlock anyway).
    let mut cmd = Command::new("prlimit");
    let own = cap_set(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "CapEff",
    );
    if setting(unit, "LimitMEMLOCK") == "infinity" && own & 1 << SYS_RESOURCE != 0 {
        cmd.arg("--memlock=unlimited:unlimited");
    }
    cmd.arg("setpriv")
        .args(["--reuid", &uid.to_string(), "--regid", &gid.to_string()])
        .arg("--clear-groups")
        .args(["--inh-caps", &ambient, "--ambient-caps", &ambient])
        .arg("--bounding-set")
        .arg(format!(
            "-all,{}",
            plus(&unit_caps(unit, "CapabilityBoundingSet"))
        ));
    if setting(unit, "NoNewPrivileges") == "yes" {
        cmd.arg("--no-new-privs");
    }
    cmd.arg("--")
        .arg(agent_bin("blippd"))
        .arg("-c")
        .arg(&config)
        .args(["--control-socket", "none", "--duration", &secs.to_string()])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap()
}

/// Waits until blippd's log says how dropping went (it says so once the
/// drop is over, in the image that keeps running), and returns its
/// /proc/PID/status then.
fn status_after_the_drop(child: &mut Child, dir: &tempfile::TempDir) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
        if stderr.contains(DROPPED_LOG) || stderr.contains(NOT_DROPPED_LOG) {
            return std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "blippd ended before dropping: {stderr}"
        );
        assert!(Instant::now() < deadline, "nothing dropped yet: {stderr}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn under_the_units_capabilities_blippd_keeps_only_what_it_needs() {
    if !require_root("blippd's eBPF probes under the unit's capabilities") {
        return;
    }
    let unit = unit_file();
    let names = capability_names();
    let own = cap_set(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "CapBnd",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_as_the_unit(&unit, &dir, 8);
    let status = status_after_the_drop(&mut child, &dir);
    let exit = child.wait().unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert!(exit.success(), "{exit}: {stderr}");
    assert!(
        stderr.contains(INHERITED),
        "the re-executed image did the drop: {stderr}"
    );

    // What the unit grants (and this test holds itself) of what blippd
    // keeps: CAP_BPF stays where the kernel checks it on map reads.
    let mut kept: Vec<String> = KEPT.iter().map(|c| (*c).to_owned()).collect();
    if stderr.contains(KEPT_BPF_LOG) {
        kept.push("bpf".to_owned());
    }
    let ambient = unit_caps(&unit, "AmbientCapabilities");
    for c in LAUNCHER {
        assert!(
            ambient.iter().any(|u| u == c),
            "the unit's ambient set lacks {c}, which the command launcher needs"
        );
    }
    let uid = status_field(&status, "Uid");
    assert!(
        uid.split_whitespace().all(|id| id != "0"),
        "blippd runs as a user other than root: Uid {uid}"
    );
    assert_eq!(
        cap_set(&status, "CapAmb"),
        0,
        "no ambient capability is left for what blippd executes"
    );
    let granted = mask(&names, &ambient) & own;
    let expected = granted & mask(&names, &kept);
    for set in ["CapBnd", "CapEff", "CapPrm"] {
        let held = cap_set(&status, set);
        eprintln!("{set}: {:?}", named(&names, held));
        assert_eq!(
            held,
            expected,
            "{set} holds {:?}, expected {:?}",
            named(&names, held),
            named(&names, expected)
        );
    }
    assert!(!stderr.contains(NOT_DROPPED_LOG), "{stderr}");
    assert!(
        stderr.contains("command launcher started"),
        "under the unit's capabilities blippd starts its command launcher: {stderr}"
    );
    let samples = json_lines(&std::fs::read_to_string(dir.path().join("stdout")).unwrap());
    assert!(
        samples.iter().any(|s| s["source"] == "ebpf"),
        "eBPF samples under the unit's capabilities: {stderr}"
    );
}
