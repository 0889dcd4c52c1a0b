//! Open descriptors (issue 16): 200 probes with a `data_file` each held
//! 1,049 descriptors, and under `ulimit -n 1024` 21 of them failed while
//! blippd exited 0. blippd raises its soft limit to the hard one at start,
//! so they all run; where the hard limit itself is too low, the run says
//! so loudly (errors, exit status 3 for `--once` and `--duration`) rather
//! than exiting 0.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output};

use blipp_tests::agent_bin;

const PROBES: usize = 200;

/// blippd over `PROBES` mem probes collecting every second, each with its
/// own data file in `dir`, under the descriptor limits `soft` and `hard`,
/// for 3 s: long enough for every probe to hold its descriptors at once
/// (a `--once` run drops each probe's as it finishes).
fn run(dir: &Path, soft: libc::rlim_t, hard: libc::rlim_t) -> Output {
    let probes: serde_json::Map<String, serde_json::Value> = (0..PROBES)
        .map(|i| {
            let file = dir.join(format!("m{i}.jsonl"));
            (
                format!("m{i}"),
                serde_json::json!({"probe_module": "mem", "data_file": file,
                    "schedule_params": {"every": 1}}),
            )
        })
        .collect();
    let config = serde_json::json!({"properties": {"configurations": {"probes": probes}}});
    let path = dir.join("blipp.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut cmd = Command::new(agent_bin("blippd"));
    cmd.arg("-c").arg(&path).args([
        "--duration",
        "3",
        "--mode",
        "proc",
        "--control-socket",
        "none",
    ]);
    // SAFETY: setrlimit is async-signal-safe; the closure allocates
    // nothing.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

fn written(dir: &Path) -> usize {
    (0..PROBES)
        .filter(|i| std::fs::metadata(dir.join(format!("m{i}.jsonl"))).is_ok_and(|m| m.len() > 0))
        .count()
}

#[test]
fn two_hundred_data_files_under_a_soft_limit_of_256_all_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), 256, 4096);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert_eq!(written(dir.path()), PROBES, "{err}");
    assert!(!err.contains("WARN") && !err.contains("ERROR"), "{err}");
}

/// A hard limit of 256 cannot be raised: what cannot be opened is
/// logged, and the run exits 3 for the data files it could not write.
#[test]
fn a_hard_limit_too_low_fails_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), 256, 256);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("Too many open files"), "{err}");
    assert!(written(dir.path()) < PROBES);
}
