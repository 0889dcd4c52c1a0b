//! The commands blippd runs, as they see themselves: an unprivileged user
//! with only its primary group, no capabilities, an empty bounding set
//! unless their program carries file capabilities, `no_new_privs`, the
//! configured resource limits, and no way back to root through a setuid
//! program. And blippd itself, while it runs them: it holds no
//! `CAP_SETUID`/`CAP_SETGID`, its launcher alone does, and the launcher dies
//! with it. Nothing a command starts outlives its collection, with a
//! cgroup per run or with the supervisor as subreaper (issue 16).

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use blipp_tests::daemon::wait_for;
use blipp_tests::{agent_bin, blippd_samples, cap_set, require_root, require_tool, status_field};
use serde_json::{Value, json};

const CAP_SETGID: u64 = 1 << 6;
const CAP_SETUID: u64 = 1 << 7;

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
    // sh has no file capabilities: its bounding set is empty.
    assert_eq!(value(&samples, "bnd"), 0, "CapBnd");
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
    blipp_tests::copy_program(Path::new("/usr/bin/id"), &id);
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
    let s = script(dir, "slow.sh", "echo 1; sleep 0.3");
    start_with(
        dir,
        &json!({"slow": {
            "probe_module": "cmd", "command": s, "schedule_params": {"every": 0.5},
            "regex": "(?P<x>\\d+)", "eventTypes": {"x": "ps:tools:blipp:test:x"}}}),
        None,
    )
}

/// blippd running `probes` for 60 s, its samples in `dir/stdout` and its
/// log in `dir/stderr`; started inside the cgroup `cgroup` when given.
fn start_with(dir: &Path, probes: &Value, cgroup: Option<&Path>) -> Child {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::process::CommandExt as _;
    let config = dir.join("blipp.json");
    let doc = json!({"properties": {"configurations": {"probes": probes}}});
    std::fs::write(&config, doc.to_string()).unwrap();
    let mut command = Command::new(agent_bin("blippd"));
    if let Some(cgroup) = cgroup {
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(cgroup.join("cgroup.procs"))
            .unwrap();
        // SAFETY: one write(2) between fork and exec; `procs` outlives
        // the spawn, which happens in this statement's scope.
        unsafe {
            command.pre_exec(move || {
                if libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    command
        .arg("-c")
        .arg(&config)
        .args(["--control-socket", "none", "--duration", "60", "--stdout"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .unwrap()
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
    wait_for(
        20,
        "the capability drop and a first sample",
        String::new,
        || {
            log().contains("capabilities only loading needed are dropped")
                && std::fs::read_to_string(dir.join("stdout"))
                    .unwrap()
                    .contains("ps:tools:blipp:test:x")
        },
    );
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
    wait_for(20, "the launcher to die with blippd", String::new, || {
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
    wait_for(
        20,
        "the timed-out command's group to be killed",
        String::new,
        || running_with("918.25").is_empty() && running_with("918.5").is_empty(),
    );
}

/// Issue 15: a program with file capabilities (a copy of cat with
/// `cap_net_raw=ep`, as Debian's ping) still starts, its bounding set
/// keeping exactly the file's permitted set, and gains nothing; without
/// that capability in the bounding set the kernel refuses to start it.
#[test]
fn a_file_capability_program_starts_and_gains_nothing() {
    if !require_root("a file-capability program run as a command")
        || !require_tool("setcap", "a file-capability program run as a command")
    {
        return;
    }
    let dir = open_dir("sandbox-filecaps");
    let cat = dir.join("capcat");
    blipp_tests::copy_program(Path::new("/usr/bin/cat"), &cat);
    let out = Command::new("setcap")
        .arg("cap_net_raw=ep")
        .arg(&cat)
        .output()
        .unwrap();
    assert!(out.status.success(), "setcap: {out:?}");
    // The control: with an empty bounding set the same exec fails.
    let out = Command::new("setpriv")
        .args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
        .args(["--bounding-set", "-all", "--no-new-privs"])
        .arg(&cat)
        .arg("/dev/null")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");

    let field = |name: &str| format!("{name}:\\s+(?P<{}>[0-9a-f]+)", name.to_lowercase());
    let regex = ["CapPrm", "CapEff", "CapBnd", "NoNewPrivs"]
        .map(field)
        .join(".*");
    let samples = samples_of(
        &json!({"probe_module": "cmd", "command": format!("{} /proc/self/status", cat.display()),
                "regex": regex,
                "eventTypes": {"capprm": "ps:tools:blipp:test:capprm", "capeff": "ps:tools:blipp:test:capeff",
                               "capbnd": "ps:tools:blipp:test:capbnd", "nonewprivs": "ps:tools:blipp:test:nonewprivs"}}),
        &json!({}),
    );
    assert_eq!(value(&samples, "capprm"), 0, "{samples:?}");
    assert_eq!(value(&samples, "capeff"), 0, "{samples:?}");
    assert_eq!(value(&samples, "nonewprivs"), 1, "{samples:?}");
    // 0000000000002000: CAP_NET_RAW alone, hex digits read as a number.
    assert_eq!(value(&samples, "capbnd"), 2000, "{samples:?}");
}

/// The cgroup v2 hierarchy's mount point.
fn cgroup2_mount() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dash = f.iter().position(|x| *x == "-")?;
            (f.get(dash + 1) == Some(&"cgroup2")).then(|| PathBuf::from(f[4]))
        })
        .expect("a cgroup v2 hierarchy is mounted (every systemd host since 2016 has one)")
}

/// A cgroup of the test's own under the v2 root, marked delegated as
/// systemd marks a `Delegate=yes` unit's, or not; removed with what
/// blippd made in it once it is empty.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn new(name: &str, delegated: bool) -> Self {
        let dir = cgroup2_mount().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        if delegated {
            let path = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
            // SAFETY: NUL-terminated path and name, a one-byte value.
            let rc = unsafe {
                libc::setxattr(
                    path.as_ptr(),
                    c"trusted.delegate".as_ptr(),
                    b"1".as_ptr().cast(),
                    1,
                    0,
                )
            };
            assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        }
        Self(dir)
    }

    /// Processes left in the run cgroups blippd made.
    fn left_in_runs(&self) -> Vec<String> {
        let mut left = Vec::new();
        for run in std::fs::read_dir(&self.0).unwrap().flatten() {
            let procs = run.path().join("cgroup.procs");
            if run.file_name() == "blippd" || !run.path().is_dir() {
                continue;
            }
            if let Ok(p) = std::fs::read_to_string(&procs) {
                left.extend(p.lines().map(|l| format!("{}: {l}", procs.display())));
            }
        }
        left
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let remove = |dir: &Path| {
            let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            subs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for sub in subs {
                let _ = std::fs::remove_dir(sub);
            }
            std::fs::remove_dir(dir).is_ok()
        };
        // The launcher leaves the leaf a moment after blippd.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !remove(&self.0) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A blippd killed when the test fails while it runs.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Issue 16 item 7: a command that escapes its process group (`setsid`,
/// a double fork) and one whose background child keeps its standard
/// output open, run every 0.3 s with a 60 s timeout. Each run ends when
/// its command exits, its output becomes a sample, and no `sleep` it
/// started survives: while blippd runs at most the one of a run under way
/// exists, and none once it has stopped. With `per_run`, a third probe
/// checks that its command ran in a run's cgroup, not in blippd's.
fn nothing_started_survives(dir: &Path, cgroup: &TestCgroup, per_run: bool, tag: &str) {
    let probe = |command: String, event: &str| {
        json!({"probe_module": "cmd", "command": command, "command_timeout": 60,
               "schedule_params": {"every": 0.3},
               "regex": "value (?P<v>\\d+)", "eventTypes": {"v": format!("ps:tools:blipp:test:{event}")}})
    };
    let escaping = format!("sh -c 'setsid sleep 300.{tag} & (sleep 301.{tag} &) ; echo value 1'");
    let holding = format!("sh -c 'sleep 302.{tag} & echo value 1'");
    let mut probes =
        json!({"escaping": probe(escaping, "escaping"), "holding": probe(holding, "holding")});
    if per_run {
        let mut where_ = probe("grep ^0:: /proc/self/cgroup".into(), "run");
        where_["regex"] = json!("^0::/\\S*/run-(?P<v>\\d+)$");
        probes["where"] = where_;
    }
    let mut blippd = KillOnDrop(start_with(dir, &probes, Some(&cgroup.0)));
    let log = || std::fs::read_to_string(dir.join("stderr")).unwrap();
    let count = |event: &str| {
        std::fs::read_to_string(dir.join("stdout"))
            .unwrap()
            .matches(&format!("\"ps:tools:blipp:test:{event}\""))
            .count()
    };
    let markers = [300, 301, 302].map(|n| format!("sleep {n}.{tag}"));
    // Well before the 60 s timeout: every run ends with its command.
    wait_for(20, "five samples of each probe", String::new, || {
        count("escaping") >= 5 && count("holding") >= 5 && (!per_run || count("run") >= 5)
    });
    let mode = if per_run {
        "commands contained: each run in a cgroup of its own"
    } else {
        "commands contained by their supervisor, a child subreaper"
    };
    assert!(log().contains(mode), "{}", log());
    for marker in &markers {
        let alive = running_with(marker);
        assert!(alive.len() <= 1, "{marker} piles up: {alive:?}\n{}", log());
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(i32::try_from(blippd.0.id()).unwrap(), libc::SIGTERM) };
    assert!(blippd.0.wait().unwrap().success(), "{}", log());
    // A run's leftovers are dead before its reply reaches blippd.
    for marker in &markers {
        assert_eq!(running_with(marker), Vec::<u32>::new(), "{marker} survived");
    }
    assert!(!log().contains("collection failed"), "{}", log());
}

#[test]
fn runs_in_cgroups_of_their_own_leave_nothing_behind() {
    if !require_root("blippd making a cgroup per run") {
        return;
    }
    let cgroup = TestCgroup::new("blipp-test-delegated", true);
    assert!(
        cgroup.0.join("cgroup.kill").exists(),
        "this kernel has no cgroup.kill (5.14), which the cgroup per run needs"
    );
    let dir = open_dir("contain-cgroup");
    nothing_started_survives(&dir, &cgroup, true, "1");
    assert_eq!(cgroup.left_in_runs(), Vec::<String>::new());
}

#[test]
fn without_a_delegated_cgroup_the_subreaper_leaves_nothing_behind() {
    if !require_root("blippd's supervisors as subreapers") {
        return;
    }
    let cgroup = TestCgroup::new("blipp-test-plain", false);
    let dir = open_dir("contain-subreaper");
    nothing_started_survives(&dir, &cgroup, false, "2");
}

/// The real `ping` (Debian's carries `cap_net_raw=ep`) as a cmd probe:
/// it always starts; it then pings through an ICMP datagram socket where
/// `net.ipv4.ping_group_range` covers the command user's group, and says
/// the socket is not permitted where it does not (blippd never changes
/// the setting).
#[test]
fn the_real_ping_starts_and_pings_where_the_group_range_allows() {
    if !require_root("ping run as the command user") || !require_tool("ping", "a ping probe") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("blipp.json");
    let doc = json!({"properties": {"configurations": {"probes": {"ping": {
        "probe_module": "cmd", "command": "ping -c 1 -W 2 127.0.0.1",
        "regex": "ttl=(?P<ttl>\\d+)", "eventTypes": {"ttl": "ps:tools:blipp:test:ttl"}}}}}});
    std::fs::write(&config, doc.to_string()).unwrap();
    let out = Command::new(agent_bin("blippd"))
        .arg("-c")
        .arg(&config)
        .args(["--once", "--control-socket", "none"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("cannot start"), "{log}");
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    let (low, high) = range.trim().split_once('\t').unwrap();
    let gid: u64 = blipp::source::command::sandbox::current().user.gid.into();
    let allowed = (low.parse::<u64>().unwrap()..=high.parse().unwrap()).contains(&gid);
    let samples = blipp_tests::json_lines(&String::from_utf8_lossy(&out.stdout));
    if allowed {
        assert_eq!(value(&samples, "ttl"), 64, "{log}");
    } else {
        assert!(samples.is_empty(), "{samples:?}");
        assert!(log.contains("socket: Operation not permitted"), "{log}");
    }
}

/// Where blippd cannot switch users (as under blippd-proc.service: an
/// unprivileged user, no capabilities), a launcher still runs its
/// commands and its supervisors still contain them.
#[test]
fn an_unprivileged_blippd_contains_its_commands_too() {
    if !require_root("blippd started as nobody")
        || !require_tool("setpriv", "blippd started as nobody")
    {
        return;
    }
    let dir = open_dir("contain-unprivileged");
    let config = dir.join("blipp.json");
    let probe = |command: &str, event: &str| {
        json!({"probe_module": "cmd", "command": command, "command_timeout": 60,
               "regex": "value (?P<v>\\d+)", "eventTypes": {"v": format!("ps:tools:blipp:test:{event}")}})
    };
    let doc = json!({"properties": {"configurations": {"probes": {
        "escaping": probe("sh -c 'setsid sleep 300.3 & (sleep 301.3 &) ; echo value 1'", "escaping"),
        "holding": probe("sh -c 'sleep 302.3 & echo value 1'", "holding")}}}});
    std::fs::write(&config, doc.to_string()).unwrap();
    let started = Instant::now();
    let out = Command::new("setpriv")
        .args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
        .args(["--bounding-set", "-all", "--inh-caps", "-all"])
        .arg(agent_bin("blippd"))
        .arg("-c")
        .arg(&config)
        .args(["--once", "--control-socket", "none"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(started.elapsed() < Duration::from_secs(30), "{log}");
    assert!(log.contains("command launcher started"), "{log}");
    let samples = blipp_tests::json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(value(&samples, "escaping"), 1, "{log}");
    assert_eq!(value(&samples, "holding"), 1, "{log}");
    for marker in ["sleep 300.3", "sleep 301.3", "sleep 302.3"] {
        assert_eq!(running_with(marker), Vec::<u32>::new(), "{marker} survived");
    }
}
