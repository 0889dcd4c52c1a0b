use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

fn runner(argv: &[&str], timeout_ms: u64, limit: usize) -> Runner {
    Runner::new(
        argv.iter().map(|s| (*s).to_owned()).collect(),
        Vec::new(),
        Duration::from_millis(timeout_ms),
        limit,
    )
}

/// A directory the command user can enter: commands no longer run as
/// root (see [`sandbox`]), and a temporary directory is private to its
/// owner.
fn tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Processes whose command line contains `marker`.
fn running_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(marker) {
                found.push(cmdline);
            }
        }
    }
    found
}

/// Waits (bounded) for processes to disappear: SIGKILLed processes are
/// reaped by their parent (init for orphans) a moment later.
fn gone(marker: &str) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if running_with(marker).is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn output_and_exit_code() {
    let mut r = runner(&["echo", "$(id)", "a;b", "*"], 5000, 1024);
    assert_eq!(r.run().unwrap(), Exit::Code(0));
    assert_eq!(r.stdout(), b"$(id) a;b *\n", "no shell interprets anything");
    let mut r = runner(&["false"], 5000, 1024);
    assert_eq!(r.run().unwrap(), Exit::Code(1));
    assert!(r.stdout().is_empty());
}

#[test]
fn clean_environment_root_directory_no_stdin() {
    let mut r = Runner::new(
        vec!["env".to_owned()],
        vec![("BLIPP_TEST".to_owned(), "x y".to_owned())],
        Duration::from_secs(5),
        4096,
    );
    r.run().unwrap();
    let mut lines: Vec<&str> = std::str::from_utf8(r.stdout()).unwrap().lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "BLIPP_TEST=x y",
            "LC_ALL=C",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ]
    );
    let mut r = runner(&["pwd"], 5000, 100);
    r.run().unwrap();
    assert_eq!(r.stdout(), b"/\n");
    // cat with /dev/null as its input ends at once.
    let mut r = runner(&["cat"], 5000, 100);
    assert_eq!(r.run().unwrap(), Exit::Code(0));
    assert!(r.stdout().is_empty());
}

#[test]
fn stderr_is_kept_apart_and_bounded() {
    let dir = tempdir();
    let s = script(
        dir.path(),
        "err.sh",
        "echo out; echo oops >&2; head -c 100000 /dev/zero | tr '\\0' e >&2; exit 2",
    );
    let mut r = runner(&[&s], 10_000, 1024);
    assert_eq!(r.run().unwrap(), Exit::Code(2));
    assert_eq!(r.stdout(), b"out\n");
    assert!(r.stderr().starts_with(b"oops\neee"));
    assert_eq!(r.stderr().len(), STDERR_KEPT);
}

#[test]
fn killed_by_a_signal() {
    let dir = tempdir();
    let s = script(dir.path(), "self.sh", "kill -TERM $$");
    let mut r = runner(&[&s], 5000, 100);
    assert_eq!(r.run().unwrap(), Exit::Signal(libc::SIGTERM));
}

#[test]
fn timeout_kills_the_whole_group() {
    let dir = tempdir();
    // A child in the background and the script itself both outlive the
    // timeout; both must be killed.
    let s = script(
        dir.path(),
        "slow.sh",
        "sleep 913.25 & echo started; sleep 913.5",
    );
    let mut r = runner(&[&s], 500, 1024);
    let started = Instant::now();
    let e = r.run().unwrap_err();
    assert!(matches!(e, CommandError::Timeout { .. }), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        r.stdout(),
        b"started\n",
        "what came before the timeout is kept"
    );
    assert!(gone("913.25"), "{:?}", running_with("913.25"));
    assert!(gone("913.5"), "{:?}", running_with("913.5"));
}

#[test]
fn leftovers_in_the_group_are_killed_after_exit() {
    let dir = tempdir();
    let s = script(
        dir.path(),
        "leave.sh",
        "sleep 914.25 >/dev/null 2>&1 & echo done",
    );
    let mut r = runner(&[&s], 5000, 1024);
    assert_eq!(r.run().unwrap(), Exit::Code(0));
    assert_eq!(r.stdout(), b"done\n");
    assert!(gone("914.25"), "{:?}", running_with("914.25"));
}

#[test]
fn a_background_child_holding_stdout_does_not_hold_up_the_run() {
    let dir = tempdir();
    let s = script(dir.path(), "hold.sh", "sleep 916.25 & echo value 1");
    let mut r = runner(&[&s], 20_000, 1024);
    let started = Instant::now();
    assert_eq!(r.run().unwrap(), Exit::Code(0));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the run waited for the child: {:?}",
        started.elapsed()
    );
    assert_eq!(r.stdout(), b"value 1\n");
    assert!(gone("916.25"), "{:?}", running_with("916.25"));
}

#[test]
fn output_limit_kills() {
    let mut r = runner(&["yes", "915.25"], 10_000, 10_000);
    let started = Instant::now();
    let e = r.run().unwrap_err();
    assert!(
        matches!(e, CommandError::TooMuchOutput { limit: 10_000, .. }),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.stdout().len(), 10_000);
    assert!(gone("915.25"));
}

#[test]
fn not_found() {
    let mut r = runner(&["blipp-no-such-command-here"], 5000, 100);
    assert!(matches!(r.run(), Err(CommandError::Spawn { .. })));
    let mut r = runner(&["/nonexistent/bin/x"], 5000, 100);
    assert!(matches!(r.run(), Err(CommandError::Spawn { .. })));
}

#[test]
fn buffers_are_reused() {
    let mut r = runner(&["echo", "one"], 5000, 100);
    r.run().unwrap();
    let mut r2 = runner(&["echo", "two"], 5000, 100);
    r2.run().unwrap();
    r.run().unwrap();
    assert_eq!(r.stdout(), b"one\n", "the previous run's output is cleared");
}

#[test]
fn runs_without_privileges_and_with_limits() {
    let mut r = runner(
        &["cat", "/proc/self/status", "/proc/self/limits"],
        5000,
        65536,
    );
    assert_eq!(r.run().unwrap(), Exit::Code(0));
    let out = String::from_utf8_lossy(r.stdout()).into_owned();
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    for set in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(field(set), ["0000000000000000"], "{set}");
    }
    assert_eq!(field("NoNewPrivs"), ["1"]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let user = &sandbox::current().user;
        let uid = user.uid.to_string();
        assert_eq!(field("Uid"), [uid.as_str(); 4]);
        assert_eq!(field("Groups"), [user.gid.to_string().as_str()]);
        assert_eq!(
            field("CapBnd"),
            ["0000000000000000"],
            "cat has no file capabilities"
        );
    }
    let limit = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .to_owned()
    };
    let l = sandbox::Limits::default();
    assert!(limit("Max open files").contains(&format!(" {} ", l.open_files)));
    assert!(limit("Max processes").contains(&format!(" {} ", l.processes)));
    assert!(limit("Max cpu time").contains(&format!(" {} ", l.cpu_seconds)));
}
