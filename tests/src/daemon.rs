//! A blippd running in the background for a test: its log in a file, and
//! waits on conditions rather than fixed sleeps.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::agent_bin;

/// A running blippd whose log goes to a file, stopped with SIGTERM by
/// [`Blippd::stop`] and killed on drop.
pub struct Blippd {
    child: Child,
    log: PathBuf,
    wrapped: bool,
}

impl Blippd {
    /// Starts blippd with `-c config -d debug args`, its log in `log`.
    pub fn start(config: &Path, args: &[&str], log: &Path) -> Self {
        Self::start_under(&[], config, args, log)
    }

    /// As [`Blippd::start`], under `wrapper` (e.g. `strace -f -o FILE`),
    /// whose process is then the one signalled.
    pub fn start_under(wrapper: &[&str], config: &Path, args: &[&str], log: &Path) -> Self {
        let mut all = vec!["-d", "debug"];
        all.extend_from_slice(args);
        Self::launch(wrapper, config, &all, log, None)
    }

    /// As [`Blippd::start`] at blippd's default log level (tests of the
    /// log level need that), with what blippd prints (its samples, when
    /// no sink is configured) in the file `stdout`.
    pub fn start_printing(config: &Path, args: &[&str], log: &Path, stdout: &Path) -> Self {
        Self::launch(&[], config, args, log, Some(stdout))
    }

    #[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
    fn launch(
        wrapper: &[&str],
        config: &Path,
        args: &[&str],
        log: &Path,
        stdout: Option<&Path>,
    ) -> Self {
        let file = std::fs::File::create(log).unwrap();
        let out = match stdout {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::null(),
        };
        let bin = agent_bin("blippd");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .arg("-c")
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(file)
            .spawn()
            .unwrap();
        Self {
            child,
            log: log.to_owned(),
            wrapped: !wrapper.is_empty(),
        }
    }

    /// blippd's pid: the child's, or under a wrapper the wrapper's first
    /// child's.
    #[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
    pub fn pid(&self) -> i32 {
        let pid = i32::try_from(self.child.id()).unwrap();
        if !self.wrapped {
            return pid;
        }
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()
            .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
            .expect("the wrapper has started blippd")
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and the exit status must be 0; returns the log.
    #[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
    pub fn stop(mut self) -> String {
        // SAFETY: kill(2) on our own child (or the wrapper's).
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        let log = self.log();
        assert!(status.success(), "blippd exited with {status}:\n{log}");
        log
    }
}

impl Blippd {
    /// SIGKILL: no flush, no goodbye; waits until it is gone.
    pub fn kill(mut self) {
        // SAFETY: kill(2) on our own child (or the wrapper's).
        unsafe { libc::kill(self.pid(), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Blippd {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `blippcmd --socket socket args`; panics unless it exits 0, and
/// returns what it printed.
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
pub fn blippcmd(socket: &Path, args: &[&str]) -> String {
    let out = Command::new(agent_bin("blippcmd"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "blippcmd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Polls `cond` until it holds or `secs` pass; then panics naming `what`
/// with `log()`.
pub fn wait_for(secs: u64, what: &str, log: impl Fn() -> String, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}; blippd log:\n{}", log());
}
