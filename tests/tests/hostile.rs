//! The bad-input corpus (issue 16): hostile configuration files
//! (`tests/data/hostile/config/`, plus the ones a file cannot hold: paths
//! to `/dev/zero`, FIFOs, directories, oversized and deeply nested files,
//! generated here) and /proc trees whose files never end or never answer.
//! Every case runs the real blippd under a time limit and an address-space
//! limit (RLIMIT_AS), and checks the exit status, that a refusal is one
//! line on stderr naming what is wrong, and that nothing hangs.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::ffi::CString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use blipp_tests::agent_bin;

/// The longest a case may take: a refusal takes milliseconds, a `--once`
/// run a second or two; a hang is what this catches.
const TIME_LIMIT: Duration = Duration::from_secs(30);

/// The address space a case may use (1 GiB): blippd's debug build runs in
/// a fraction of it; reading `/dev/zero` without a cap went to 24 GB.
const MEMORY_LIMIT: libc::rlim_t = 1 << 30;

/// How a run ended.
struct Outcome {
    code: Option<i32>,
    stderr: String,
}

/// Runs `program` with `args` under [`TIME_LIMIT`] and [`MEMORY_LIMIT`];
/// panics on a hang.
fn run_limited(program: &Path, args: &[&std::ffi::OsStr], case: &str) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("stderr");
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the
    // parent; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: MEMORY_LIMIT,
                rlim_max: MEMORY_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + TIME_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{case}: {} {args:?} still running after {TIME_LIMIT:?}; stderr:\n{}",
                program.display(),
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        code: status.code(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    }
}

/// A configuration refused by `blippd --check`, `blippd --once` and
/// `blippcmd check` alike: exit status 2, one line naming `path` and
/// containing `expected`.
fn assert_refused(path: &Path, expected: &str, case: &str) {
    let blippd = agent_bin("blippd");
    let blippcmd = agent_bin("blippcmd");
    let p = path.as_os_str();
    let runs: [(&Path, Vec<&std::ffi::OsStr>); 3] = [
        (&blippd, vec!["--check".as_ref(), "-c".as_ref(), p]),
        (
            &blippd,
            vec![
                "--once".as_ref(),
                "--mode".as_ref(),
                "proc".as_ref(),
                "-c".as_ref(),
                p,
            ],
        ),
        (&blippcmd, vec!["check".as_ref(), p]),
    ];
    for (program, args) in runs {
        let out = run_limited(program, &args, case);
        let line = out.stderr.trim_end();
        assert_eq!(out.code, Some(2), "{case}: {args:?}: {line}");
        assert_eq!(
            line.lines().count(),
            1,
            "{case}: {args:?}: one line: {line}"
        );
        assert!(
            line.contains(&path.display().to_string()),
            "{case}: names the file: {line}"
        );
        assert!(line.contains(expected), "{case}: {expected:?} in: {line}");
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/hostile/config")
}

/// Each file of the corpus and what its refusal must say. Every file in
/// the directory must be listed, so a new case cannot go unchecked.
const CONFIG_CASES: &[(&str, &str)] = &[
    (
        "every_1e-9.json",
        "schedule_params/every: 1e-9 is invalid: expected a number of at least 0.1",
    ),
    (
        "every_1e308.json",
        "schedule_params/every: 1e+308 is invalid: expected a number of at most 31536000",
    ),
    (
        "start_time_1e300.json",
        "schedule_params/start_time: 1e+300 is invalid: expected a number of at most 32503680000",
    ),
    (
        "random_low_above_high.json",
        "schedule_params/low: 10 is invalid: expected at most high (5)",
    ),
    (
        "backoff_max_1e12.json",
        "schedule_params/max: 1000000000000.0 is invalid: expected a number of at most 31536000",
    ),
    (
        "unis_poll_interval_0.001.json",
        "/properties/configurations/unis_poll_interval: 0.001 is invalid: expected a number of at least 0.1",
    ),
    (
        "unis_max_backoff_1e308.json",
        "/properties/configurations/unis_max_backoff: 1e+308 is invalid",
    ),
    (
        "port_refresh_1e-6.json",
        "/properties/configurations/probes/p/refresh: 1e-6 is invalid: expected a number of at least 0.1",
    ),
    (
        "name_with_control_characters.json",
        "/properties/configurations/probes/a\\nb\\u{1b}[2J/probe_module: \"gpu\" is invalid",
    ),
    ("binary_garbage.json", "cannot read: not UTF-8 text"),
    (
        "reporting_params_2e64.json",
        "/properties/configurations/probes/c/reporting_params: 1.8446744073709552e+19 is invalid: expected a number of at most 4294967295",
    ),
];

#[test]
fn hostile_configuration_files_are_refused_in_one_line() {
    let mut listed: Vec<&str> = CONFIG_CASES.iter().map(|(f, _)| *f).collect();
    listed.sort_unstable();
    let mut present: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    present.sort_unstable();
    assert_eq!(present, listed, "every corpus file has its expectation");
    for (file, expected) in CONFIG_CASES {
        assert_refused(&corpus_dir().join(file), expected, file);
    }
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Paths that are not a configuration file a reader can finish: refused
/// at once by their type or their size, whichever command reads them.
#[test]
fn configuration_paths_that_never_end_or_never_answer_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::os::unix::fs::symlink("/dev/zero", d.join("zero.json")).unwrap();
    std::os::unix::fs::symlink("/dev/urandom", d.join("urandom.json")).unwrap();
    mkfifo(&d.join("fifo.json"));
    std::fs::create_dir(d.join("dir.json")).unwrap();
    // Valid JSON, one byte over 4 MiB.
    let mut big = String::from("{\"x\": \"");
    big.push_str(&" ".repeat((4 << 20) - big.len() - 1));
    big.push_str("\"}");
    std::fs::write(d.join("big.json"), &big).unwrap();
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    std::fs::write(d.join("nested.json"), nested).unwrap();
    for (file, expected) in [
        ("zero.json", "not a regular file but a character device"),
        ("urandom.json", "not a regular file but a character device"),
        ("fifo.json", "not a regular file but a FIFO"),
        ("dir.json", "not a regular file but a directory"),
        ("big.json", "cannot read: longer than the limit of 4 MiB"),
        ("nested.json", "recursion limit exceeded"),
    ] {
        assert_refused(&d.join(file), expected, file);
    }
}

/// A /proc tree whose files never end, never answer or hold values no
/// kernel prints: the collection that reads one fails with a warning
/// naming the file and why, the others go on, and blippd finishes its
/// `--once` run.
#[test]
fn proc_files_that_never_end_or_never_answer_fail_their_collection_only() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/host/proc");
    let config = r#"{"properties": {"configurations": {"probes": {
        "c": {"probe_module": "cpu"}, "m": {"probe_module": "mem"},
        "d": {"probe_module": "disk"}, "n": {"probe_module": "net"}}}}}"#;
    let sparse = |path: &Path| {
        let f = std::fs::File::create(path).unwrap();
        f.set_len(100 << 20).unwrap();
    };
    type Make = fn(&Path);
    let cases: [(&str, Make, &str); 7] = [
        (
            "loadavg",
            |p| std::os::unix::fs::symlink("/dev/zero", p).unwrap(),
            "not a regular file but a character device",
        ),
        ("stat", |p| mkfifo(p), "not a regular file but a FIFO"),
        (
            "diskstats",
            |p| std::os::unix::fs::symlink("/dev/urandom", p).unwrap(),
            "not a regular file but a character device",
        ),
        ("meminfo", sparse, "longer than the limit of 64 MiB"),
        (
            "net/dev",
            |p| std::fs::create_dir(p).unwrap(),
            "not a regular file but a directory",
        ),
        // Values no kernel prints (see blipp-agent/src/plausible.rs).
        (
            "loadavg",
            |p| std::fs::write(p, "1e29 0.5 0.5 1/80 11206\n").unwrap(),
            "1-minute load 1e29 is implausible (at most 4194304)",
        ),
        (
            "meminfo",
            |p| std::fs::write(p, "MemTotal: 1000 kB\nMemFree: 18446744073709551615 kB\n").unwrap(),
            "MemFree: 18446744073709551615 is implausible",
        ),
    ];
    for (file, make, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path().join("proc");
        std::fs::create_dir_all(proc.join("net")).unwrap();
        for f in [
            "stat",
            "loadavg",
            "meminfo",
            "diskstats",
            "net/dev",
            "net/snmp",
        ] {
            if f != file {
                std::fs::copy(fixtures.join(f), proc.join(f)).unwrap();
            }
        }
        make(&proc.join(file));
        let cfg = dir.path().join("blipp.json");
        std::fs::write(&cfg, config).unwrap();
        let args: Vec<&std::ffi::OsStr> = vec![
            "--once".as_ref(),
            "--mode".as_ref(),
            "proc".as_ref(),
            "--control-socket".as_ref(),
            "none".as_ref(),
            "--proc-dir".as_ref(),
            proc.as_os_str(),
            "-c".as_ref(),
            cfg.as_os_str(),
        ];
        let out = run_limited(&agent_bin("blippd"), &args, file);
        assert_eq!(out.code, Some(0), "{file}: {}", out.stderr);
        let path = proc.join(file).display().to_string();
        assert!(
            out.stderr.lines().any(|l| l.contains("collection failed")
                && l.contains(&path)
                && l.contains(expected)),
            "{file}: a warning naming {path} and {expected:?}:\n{}",
            out.stderr
        );
    }
}
