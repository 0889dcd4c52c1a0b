//! Running a configured command once and capturing its output, for the
//! `cmd` and `nagios` probes. Commands come from configuration files (and
//! later from UNIS), so:
//!
//! - never through a shell: the argument vector is executed directly
//!   ([`argv`] builds it), so `;`, `|`, `$(...)`, globs mean nothing;
//! - a clean environment: the child gets only [`BASE_ENV`] plus the
//!   probe's own `environment` entries, never blipp's own variables;
//! - working directory `/`, standard input `/dev/null`;
//! - its own process group, killed as a whole (SIGKILL) when the command
//!   outlives its timeout or prints more than its output limit, and after
//!   it exits; through the launcher, also a cgroup of its own or a
//!   subreaper that kills whatever left the group ([`contain`]);
//! - a run ends when the command exits, even if something it left
//!   behind still holds its standard output open: what it printed so far
//!   is used, and the leftovers are killed;
//! - bounded memory: at most `output_limit` bytes of standard output and
//!   [`STDERR_KEPT`] bytes of standard error are kept;
//! - an unprivileged user, no capabilities, no new privileges and resource
//!   limits ([`sandbox`]). blippd itself keeps no right to switch users:
//!   its [`launcher`] does, and runs each command for it.
//!
//! The wait is a blocking `poll(2)` on the two pipes with the deadline as
//! its timeout: no thread per stream, no busy loop. Callers run it on a
//! thread that may block (the arbiter runs such probes on tokio's blocking
//! pool).

pub mod argv;
pub mod contain;
pub mod filecaps;
pub mod launcher;
pub mod pipeline;
pub mod sandbox;
pub mod wire;

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The environment every command gets: a fixed search path and the C
/// locale (numbers printed with a `.` decimal point, untranslated
/// messages, which is what regexes and the perfdata parser expect).
pub const BASE_ENV: [(&str, &str); 2] = [
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("LC_ALL", "C"),
];

/// Standard error kept for log messages; the rest is read and dropped.
pub const STDERR_KEPT: usize = 4096;

/// How much longer than a command's timeout blippd waits for the
/// launcher's reply.
const LAUNCHER_GRACE: Duration = Duration::from_secs(5);

/// Without a pidfd (before Linux 5.3), how often the wait for output
/// checks whether the command has exited.
const EXIT_CHECK: Duration = Duration::from_millis(20);

/// The calls a run reports failures of, as they cross from the launcher.
const IO_CALLS: [&str; 6] = ["fcntl", "poll", "read", "waitid", "wait", "memfd"];

/// Why a command gave no output to parse.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// It could not be started (not found, not executable, ...).
    #[error("{program}: cannot start: {source}")]
    Spawn {
        /// `argv[0]`.
        program: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// It ran longer than its timeout and was killed with its group.
    #[error("{program}: killed after its timeout of {timeout:?}")]
    Timeout {
        /// `argv[0]`.
        program: String,
        /// The timeout.
        timeout: Duration,
    },
    /// It printed more than the output limit and was killed with its group.
    #[error("{program}: killed after printing more than {limit} bytes")]
    TooMuchOutput {
        /// `argv[0]`.
        program: String,
        /// The limit.
        limit: usize,
    },
    /// Reading its output or waiting for it failed.
    #[error("{program}: {call}: {source}")]
    Io {
        /// `argv[0]`.
        program: String,
        /// The call that failed.
        call: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// A command ready to run again and again, with its output buffers.
#[derive(Debug)]
pub struct Runner {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    timeout: Duration,
    output_limit: usize,
    /// Standard input of the next run; empty: /dev/null.
    stdin: Vec<u8>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl From<ExitStatus> for Exit {
    fn from(s: ExitStatus) -> Self {
        match (s.code(), s.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Signal(0),
        }
    }
}

/// The child's process group, killed and reaped however the run ends.
struct Group {
    child: Child,
    /// Readable once the leader has exited; `None` before Linux 5.3.
    pidfd: Option<OwnedFd>,
    reaped: bool,
}

impl Group {
    fn new(child: Child) -> Self {
        // SAFETY: pidfd_open with integer arguments; the leader is not
        // reaped yet, so its pid is its own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id(), 0) };
        let pidfd = RawFd::try_from(fd)
            .ok()
            .filter(|fd| *fd >= 0)
            // SAFETY: a fresh descriptor nobody else owns.
            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
        Self {
            child,
            pidfd,
            reaped: false,
        }
    }

    fn pidfd(&self) -> Option<RawFd> {
        self.pidfd.as_ref().map(AsRawFd::as_raw_fd)
    }

    fn kill(&self) {
        let pgid = libc::pid_t::try_from(self.child.id()).unwrap_or(0);
        if pgid > 0 {
            // SAFETY: killpg has no memory effects. The group leader is not
            // reaped yet (at worst a zombie), so its pid and with it the
            // group id cannot have been reused by another process.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }

    /// True once the leader has exited (it stays a zombie: not reaped).
    fn exited(&self) -> Result<bool, io::Error> {
        let pid = libc::id_t::from(self.child.id());
        // SAFETY: an all-zero siginfo_t is a valid value for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t; WNOWAIT leaves the
        // child waitable so that `Child::wait` reaps it later.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &raw mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: waitid succeeded, so si_pid is initialised (0 when the
        // child has not changed state).
        Ok(unsafe { info.si_pid() } != 0)
    }

    fn reap(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait();
        self.reaped = true;
        status
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = self.child.wait();
        }
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor this process owns; no memory effects.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One of the child's output pipes and what is kept of it.
struct Stream<R> {
    pipe: Option<R>,
    buf: Vec<u8>,
    keep: usize,
}

impl<R: Read + AsRawFd> Stream<R> {
    fn fd(&self) -> Option<RawFd> {
        self.pipe.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Reads what is there now, keeping up to `keep` bytes; returns how
    /// many bytes were printed beyond that. End of file closes the stream.
    fn drain(&mut self, chunk: &mut [u8]) -> io::Result<usize> {
        let mut overflow = 0;
        while let Some(pipe) = &mut self.pipe {
            match pipe.read(chunk) {
                Ok(0) => self.pipe = None,
                Ok(n) => {
                    let room = self.keep.saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(&chunk[..n.min(room)]);
                    overflow += n.saturating_sub(room);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(overflow)
    }
}

/// A file holding `bytes`, read from its start: a pipeline stage's
/// standard input, which the stage reads at its own pace without anyone
/// writing to a pipe while its run is pumped.
fn input_file(bytes: &[u8]) -> io::Result<OwnedFd> {
    use std::io::{Seek as _, Write as _};
    // SAFETY: memfd_create with a NUL-terminated name and flags; the
    // descriptor it returns is fresh and owned here.
    let fd = unsafe { libc::memfd_create(c"blipp-stdin".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(bytes)?;
    file.rewind()?;
    Ok(file.into())
}

impl Runner {
    /// A runner for `argv` (never empty: [`argv::build`] guarantees it) with
    /// extra environment entries on top of [`BASE_ENV`].
    pub fn new(
        argv: Vec<String>,
        env: Vec<(String, String)>,
        timeout: Duration,
        output_limit: usize,
    ) -> Self {
        Self {
            argv,
            env,
            timeout,
            output_limit,
            stdin: Vec::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// What the next runs read on standard input (a pipeline's previous
    /// stage's output); empty for /dev/null.
    pub fn set_stdin(&mut self, stdin: Vec<u8>) {
        self.stdin = stdin;
    }

    /// The timeout of the next runs.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Standard output of the last run, taken out (leaving it empty).
    pub fn take_stdout(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.stdout)
    }

    /// The argument vector.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// Standard output of the last run.
    pub fn stdout(&self) -> &[u8] {
        &self.stdout
    }

    /// Standard error of the last run (at most [`STDERR_KEPT`] bytes).
    pub fn stderr(&self) -> &[u8] {
        &self.stderr
    }

    fn program(&self) -> String {
        self.argv.first().cloned().unwrap_or_default()
    }

    /// The `PATH` the command is looked up in: its own environment's.
    fn path_var(&self) -> OsString {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .or_else(|| BASE_ENV.iter().find(|(k, _)| *k == "PATH").map(|(_, v)| *v))
            .unwrap_or_default()
            .into()
    }

    /// The file the command executes, when it can be found, and the
    /// bounding set its run keeps ([`filecaps`]).
    fn executable(&self) -> (Option<std::path::PathBuf>, u64) {
        let path = filecaps::resolve(&self.program(), &self.path_var());
        let bounding = filecaps::bounding_for(path.as_deref().and_then(filecaps::read));
        (path, bounding)
    }

    fn io(&self, call: &'static str) -> impl FnOnce(io::Error) -> CommandError + '_ {
        move |source| CommandError::Io {
            program: self.program(),
            call,
            source,
        }
    }

    /// Runs the command to its end, blocking up to the timeout: through
    /// the launcher when blippd started one, else in this process.
    pub fn run(&mut self) -> Result<Exit, CommandError> {
        match launcher::registered() {
            Some(l) => self.run_launched(l),
            None => self.run_here(sandbox::current(), None),
        }
    }

    /// Has the launcher run the command. Its supervisor enforces the
    /// timeout; waiting a little longer for its reply covers its own
    /// start and the copy of the output.
    fn run_launched(&mut self, launcher: &launcher::Launcher) -> Result<Exit, CommandError> {
        self.stdout.clear();
        self.stderr.clear();
        let request = wire::Request {
            argv: self.argv.clone(),
            env: self.env.clone(),
            timeout: self.timeout,
            output_limit: self.output_limit,
            stdin: self.stdin.clone(),
        };
        let deadline = Instant::now() + self.timeout + LAUNCHER_GRACE;
        let reply = launcher.run(&request, deadline).map_err(|e| {
            if e.kind() == io::ErrorKind::TimedOut {
                CommandError::Timeout {
                    program: self.program(),
                    timeout: self.timeout,
                }
            } else {
                self.io("launcher")(e)
            }
        })?;
        self.stdout = reply.stdout;
        self.stderr = reply.stderr;
        let program = self.program();
        match reply.outcome {
            wire::Outcome::Exit { code } => Ok(Exit::Code(code)),
            wire::Outcome::Signal { signal } => Ok(Exit::Signal(signal)),
            wire::Outcome::Spawn { errno, message } => Err(CommandError::Spawn {
                program,
                source: wire::error(errno, &message),
            }),
            wire::Outcome::Timeout => Err(CommandError::Timeout {
                program,
                timeout: self.timeout,
            }),
            wire::Outcome::TooMuchOutput => Err(CommandError::TooMuchOutput {
                program,
                limit: self.output_limit,
            }),
            wire::Outcome::Io {
                call,
                errno,
                message,
            } => Err(CommandError::Io {
                program,
                call: IO_CALLS
                    .into_iter()
                    .find(|c| *c == call)
                    .unwrap_or("launcher"),
                source: wire::error(errno, &message),
            }),
        }
    }

    /// Runs the command as a child of this process, in `sandbox` as far as
    /// this process's privileges allow (see [`sandbox::enter`]), and in
    /// the cgroup whose `cgroup.procs` is `cgroup` when given
    /// ([`contain::join`]).
    fn run_here(
        &mut self,
        sandbox: &sandbox::Sandbox,
        cgroup: Option<RawFd>,
    ) -> Result<Exit, CommandError> {
        self.stdout.clear();
        self.stderr.clear();
        let deadline = Instant::now() + self.timeout;
        let (program, args) = self.argv.split_first().ok_or_else(|| CommandError::Spawn {
            program: String::new(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
        })?;
        let user = sandbox.user.clone();
        let limits = sandbox.limits;
        let (path, bounding) = self.executable();
        let mut command = Command::new(path.as_deref().map_or(program.as_ref(), |p| p.as_os_str()));
        // SAFETY: `join` and `enter` make system calls only, no
        // allocation and no lock, as a hook between fork and exec must.
        unsafe {
            command.pre_exec(move || {
                if let Some(fd) = cgroup {
                    contain::join(fd)?;
                }
                sandbox::enter(&user, Some(&limits), bounding)
            });
        }
        let stdin = if self.stdin.is_empty() {
            Stdio::null()
        } else {
            Stdio::from(input_file(&self.stdin).map_err(self.io("memfd"))?)
        };
        let child = command
            .arg0(program)
            .args(args)
            .env_clear()
            .envs(BASE_ENV)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| CommandError::Spawn {
                program: program.clone(),
                source,
            })?;
        let mut group = Group::new(child);
        let mut out = Stream {
            pipe: group.child.stdout.take(),
            buf: std::mem::take(&mut self.stdout),
            keep: self.output_limit,
        };
        let mut err = Stream {
            pipe: group.child.stderr.take(),
            buf: std::mem::take(&mut self.stderr),
            keep: STDERR_KEPT,
        };
        let result = [out.fd(), err.fd()]
            .into_iter()
            .flatten()
            .try_for_each(set_nonblocking)
            .map_err(self.io("fcntl"))
            .and_then(|()| self.pump(&mut group, deadline, &mut out, &mut err));
        self.stdout = out.buf;
        self.stderr = err.buf;
        result
    }

    /// Reads both pipes until they close or the leader exits, whichever
    /// comes first, then waits for the leader to exit, all before
    /// `deadline`. A leader that exits while something it started still
    /// holds a pipe open ends the run: what is in the pipes then is kept.
    fn pump(
        &self,
        group: &mut Group,
        deadline: Instant,
        out: &mut Stream<ChildStdout>,
        err: &mut Stream<ChildStderr>,
    ) -> Result<Exit, CommandError> {
        let timeout = || CommandError::Timeout {
            program: self.program(),
            timeout: self.timeout,
        };
        let mut chunk = [0u8; 8192];
        let mut exited = false;
        while !exited && (out.pipe.is_some() || err.pipe.is_some()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timeout());
            }
            let mut fds = [out.fd(), err.fd(), group.pidfd()].map(|fd| libc::pollfd {
                fd: fd.unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            });
            let wait = if group.pidfd.is_some() {
                left
            } else {
                left.min(EXIT_CHECK)
            };
            let ms = libc::c_int::try_from(wait.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: `fds` is a valid array of three pollfd; a negative fd
            // is ignored by poll.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), 3, ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(self.io("poll")(e));
            }
            exited = if group.pidfd.is_some() {
                fds[2].revents != 0
            } else {
                group.exited().map_err(self.io("waitid"))?
            };
            // Once the leader is gone, what is in the pipes is all it wrote.
            if (exited || fds[0].revents != 0)
                && out.drain(&mut chunk).map_err(self.io("read"))? > 0
            {
                return Err(CommandError::TooMuchOutput {
                    program: self.program(),
                    limit: self.output_limit,
                });
            }
            if exited || fds[1].revents != 0 {
                err.drain(&mut chunk).map_err(self.io("read"))?;
            }
        }
        // Both pipes closed: the leader normally exits at the same time.
        let mut nap = Duration::from_millis(1);
        while !group.exited().map_err(self.io("waitid"))? {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timeout());
            }
            std::thread::sleep(nap.min(left));
            nap = (nap * 2).min(Duration::from_millis(50));
        }
        group.kill();
        let status = group.reap().map_err(self.io("wait"))?;
        Ok(Exit::from(status))
    }
}

#[cfg(test)]
mod tests;
