//! The launcher: a small process, forked from blippd at start-up, that
//! alone keeps what switching users needs (`CAP_SETUID`, `CAP_SETGID`,
//! and `CAP_SETPCAP` for the bounding set), so that blippd itself can give
//! them up.
//!
//! It is forked while blippd has one thread, before blippd drops its
//! capabilities; it dies with blippd (`PR_SET_PDEATHSIG`, and end of file
//! on its socket). It never reads what blippd sends: each request is one
//! byte carrying a stream socket (`SCM_RIGHTS`), for which it forks a
//! per-run supervisor and goes on. The supervisor sets up the run's
//! containment while it is root ([`contain`]), drops everything but
//! `CAP_SETPCAP` ([`sandbox::enter_keeping_setpcap`]) and only then reads
//! the command from that socket; it cuts its bounding set to what the
//! program's file capabilities need ([`filecaps`](super::filecaps)),
//! drops `CAP_SETPCAP` too, runs the command as the command user (so it
//! can kill and reap it without `CAP_KILL`), kills whatever the command
//! left, writes the reply ([`wire`]) and exits. The privileged process
//! thus parses nothing blippd (or a command) could have shaped, and the
//! supervisor reads the request holding only the right to shrink its own
//! bounding set, under `no_new_privs`.
//!
//! Where blippd cannot switch users, the launcher still runs every
//! command, as blippd's own user: its supervisors are what contains them.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::contain::{self, Base, RunCgroup};
use super::sandbox::{self, Sandbox};
use super::wire::{self, Outcome, Reply, Request};
use super::{CommandError, Runner};

/// What the launcher keeps: switching users, and emptying the bounding
/// set of each run (linux/capability.h numbers).
const LAUNCHER_CAPS: u64 = sandbox::mask(&[6, 7, 8]);

/// File capabilities a command's program may carry and still be
/// executed (`CAP_NET_RAW`: ping, arping, fping, mtr-packet): the
/// launcher's bounding set keeps them so that a run can keep its
/// program's in its own, which it never gains under `no_new_privs`. A
/// program with others is refused at exec (EPERM).
const STARTABLE_FILE_CAPS: u64 = sandbox::mask(&[13]);

/// How long a supervisor waits for its command's cgroup to empty.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// What every supervisor of a launcher needs to know.
#[derive(Debug)]
struct Setting<'a> {
    sandbox: &'a Sandbox,
    /// Whether it can become the command user (else it stays blippd's).
    switching: bool,
    /// blippd's delegated cgroup, when runs get cgroups of their own.
    cgroups: Option<Base>,
}

/// blippd's end of the launcher's socket.
#[derive(Debug)]
pub struct Launcher {
    socket: OwnedFd,
    pid: libc::pid_t,
}

static REGISTERED: OnceLock<Launcher> = OnceLock::new();

/// The launcher every command of this process goes through, if blippd
/// started one.
pub fn registered() -> Option<&'static Launcher> {
    REGISTERED.get()
}

/// Why no launcher was started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Forking is only sound while the process has one thread.
    #[error("blippd has {0} threads; the launcher must be forked while it has one")]
    Threads(usize),
    /// A system call failed.
    #[error("{call}: {source}")]
    Sys {
        /// The call.
        call: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

fn sys(call: &'static str) -> impl FnOnce(io::Error) -> LaunchError {
    move |source| LaunchError::Sys { call, source }
}

fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

impl Launcher {
    /// Forks the launcher for commands run in `sandbox`, and registers it
    /// for every [`Runner`] of this process. Call it while the process
    /// has one thread (checked) and, to run commands as the command user,
    /// still holds `CAP_SETUID` and `CAP_SETGID`. Logs how runs are
    /// contained.
    pub fn start(sandbox: &Sandbox) -> Result<libc::pid_t, LaunchError> {
        match threads() {
            1 => {}
            n => return Err(LaunchError::Threads(n)),
        }
        let switching = sandbox::can_switch_user();
        let user = &sandbox.user;
        let cgroups = contain::prepare(switching.then_some((user.uid, user.gid)));
        match &cgroups {
            Ok(base) => tracing::info!(
                cgroup = %base.dir().display(),
                "commands contained: each run in a cgroup of its own, killed as a whole when the command ends"
            ),
            Err(reason) => tracing::info!(
                reason = %reason,
                "commands contained by their supervisor, a child subreaper that kills what they leave: no cgroup per run"
            ),
        }
        let setting = Setting {
            sandbox,
            switching,
            cgroups: cgroups.ok(),
        };
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(sys("socketpair")(io::Error::last_os_error()));
        }
        // SAFETY: socketpair returned two fresh descriptors we own.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the process has one thread (checked above), so the child
        // is a complete copy and may allocate, as the launcher does.
        match unsafe { libc::fork() } {
            -1 => Err(sys("fork")(io::Error::last_os_error())),
            0 => {
                drop(ours);
                launcher_main(theirs, &setting, parent)
            }
            pid => {
                drop(theirs);
                let _ = REGISTERED.set(Launcher { socket: ours, pid });
                Ok(pid)
            }
        }
    }

    /// The launcher's pid.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Runs `request` through the launcher, waiting for the reply until
    /// `deadline` (a little past the command's own timeout, which the
    /// supervisor enforces).
    pub(super) fn run(&self, request: &Request, deadline: Instant) -> io::Result<Reply> {
        let (mut mine, theirs) = UnixStream::pair()?;
        send_fd(self.socket.as_fd(), theirs.as_fd())?;
        drop(theirs);
        mine.set_write_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(MIN_WAIT),
        ))?;
        wire::write_request(&mut mine, request)?;
        wire::read_reply(
            &mut Deadlined {
                stream: &mine,
                deadline,
            },
            request.output_limit,
        )
    }
}

const MIN_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// A stream whose reads fail with `TimedOut` once `deadline` is past.
struct Deadlined<'a> {
    stream: &'a UnixStream,
    deadline: Instant,
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left.max(MIN_WAIT)))?;
        let mut stream = self.stream;
        stream.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                io::ErrorKind::TimedOut.into()
            } else {
                e
            }
        })
    }
}

/// Room for one control message carrying one descriptor, aligned for
/// `cmsghdr`.
#[repr(C, align(8))]
struct FdControl([u8; 32]);

fn send_fd(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let byte = [0u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_ptr().cast_mut().cast(),
        iov_len: 1,
    };
    let mut control = FdControl([0; 32]);
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive
    // the sendmsg call, and CMSG_SPACE of one int fits in `control`.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(size_of::<RawFd>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd.as_raw_fd());
        if libc::sendmsg(socket.as_raw_fd(), &raw const msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The next descriptor sent on `socket`; `None` at end of file. Messages
/// without one are skipped.
fn recv_fd(socket: RawFd) -> io::Result<Option<OwnedFd>> {
    loop {
        let mut byte = [0u8];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut control = FdControl([0; 32]);
        // SAFETY: an all-zero msghdr is valid; its pointers outlive the
        // call and the lengths are those of the buffers.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len() as _;
        // SAFETY: as above.
        let n = unsafe { libc::recvmsg(socket, &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(None);
        }
        // SAFETY: the kernel filled `control` with `msg_controllen` bytes
        // of well-formed control messages; CMSG_* walk only those.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
                    return Ok(Some(OwnedFd::from_raw_fd(fd)));
                }
                cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
            }
        }
    }
}

/// The descriptor the launcher keeps its socket on.
const KEPT_FD: RawFd = 3;

/// Closes every descriptor but `socket`, which moves to [`KEPT_FD`], and
/// points 0, 1 and 2 at /dev/null, so that nothing of blippd's (eBPF
/// objects, files, sockets) reaches the launcher or what it starts, and a
/// descriptor received later never lands on a standard stream.
fn keep_only(socket: OwnedFd) -> RawFd {
    let raw = socket.into_raw_fd();
    // SAFETY: plain descriptor calls on descriptors this process owns, in
    // a single-threaded process.
    unsafe {
        if raw == KEPT_FD {
            libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC);
        } else {
            libc::dup3(raw, KEPT_FD, libc::O_CLOEXEC);
        }
    }
    close_from(KEPT_FD + 1);
    // SAFETY: as above; the path is a NUL-terminated literal.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..=2 {
                if fd != null {
                    libc::dup2(null, fd);
                }
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    KEPT_FD
}

/// Closes every descriptor from `first` on: `close_range` (Linux 5.9),
/// else one by one from /proc/self/fd.
fn close_from(first: RawFd) {
    // SAFETY: close_range with integer arguments.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) };
    if rc == 0 {
        return;
    }
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first)
        .collect();
    for fd in open {
        // SAFETY: closing descriptors of this single-threaded process; the
        // directory's own one is already closed (EBADF, ignored).
        unsafe {
            libc::close(fd);
        }
    }
}

fn set_signal(signal: libc::c_int, action: libc::sighandler_t) {
    // SAFETY: installs SIG_IGN or SIG_DFL, no handler code.
    unsafe {
        libc::signal(signal, action);
    }
}

fn exit(code: libc::c_int) -> ! {
    // SAFETY: _exit ends the process without running blippd's atexit
    // handlers or flushing its buffers, which belong to blippd.
    unsafe { libc::_exit(code) }
}

/// The launcher process.
fn launcher_main(socket: OwnedFd, setting: &Setting<'_>, parent: libc::pid_t) -> ! {
    // SAFETY: prctl and getppid with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::getppid() != parent {
            exit(0);
        }
    }
    let socket = keep_only(socket);
    // blippd ends it (end of file, or its death): a Ctrl-C or a stop
    // signal to the whole group must not take it away while blippd
    // still waits for a last command.
    set_signal(libc::SIGINT, libc::SIG_IGN);
    set_signal(libc::SIGTERM, libc::SIG_IGN);
    // Supervisors are reaped by the kernel.
    set_signal(libc::SIGCHLD, libc::SIG_IGN);
    // Without CAP_SETPCAP (blippd cannot switch users) there is nothing
    // to drop and nothing a command could gain.
    let held = sandbox::effective().unwrap_or(0);
    let bounded = if held & 1 << 8 == 0 {
        Ok(())
    } else {
        sandbox::drop_bounding(LAUNCHER_CAPS | STARTABLE_FILE_CAPS)
    };
    let dropped = bounded.and_then(|()| {
        // SAFETY: prctl with integer arguments.
        if unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        sandbox::capset(LAUNCHER_CAPS & held)
    });
    if dropped.is_err() {
        exit(1);
    }
    let sweep = || {
        if let Some(base) = &setting.cgroups {
            contain::sweep(base);
        }
    };
    loop {
        match recv_fd(socket) {
            Ok(Some(reply)) => {
                sweep();
                // SAFETY: this process has one thread.
                match unsafe { libc::fork() } {
                    0 => supervise(reply, socket, setting),
                    // A failed fork drops the socket: blippd reads end of file.
                    _ => drop(reply),
                }
            }
            Ok(None) => {
                // With SIGCHLD ignored, wait returns once every supervisor
                // has ended; their cgroups can then go.
                // SAFETY: wait with a null status pointer.
                while unsafe { libc::wait(std::ptr::null_mut()) } > 0 {}
                sweep();
                exit(0)
            }
            Err(_) => exit(1),
        }
    }
}

/// A per-run supervisor: contains the run, becomes the command user, then
/// runs the command it reads from `reply`, kills what it left and answers
/// there.
fn supervise(reply: OwnedFd, launcher: RawFd, setting: &Setting<'_>) -> ! {
    // SAFETY: closing the launcher's socket in this copy: neither the
    // supervisor nor the command may send the launcher anything.
    unsafe {
        libc::close(launcher);
    }
    // Ignored signals stay ignored across exec: the command gets the
    // defaults.
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGCHLD] {
        set_signal(signal, libc::SIG_DFL);
    }
    let mut stream = UnixStream::from(reply);
    let code = i32::from(serve(&mut stream, setting).is_err());
    drop(stream);
    exit(code)
}

fn refuse(stream: &mut UnixStream, message: String) -> io::Result<()> {
    let reply = Reply {
        outcome: Outcome::Spawn {
            errno: None,
            message,
        },
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    wire::write_reply(stream, &reply)
}

fn serve(stream: &mut UnixStream, setting: &Setting<'_>) -> io::Result<()> {
    let sandbox = setting.sandbox;
    let user = &sandbox.user;
    // Should prctl fail, the process group and the cgroup still contain
    // the run.
    let _ = contain::become_subreaper();
    // A run whose cgroup cannot be made is still contained by the
    // subreaper.
    let cgroup = setting
        .cgroups
        .as_ref()
        .and_then(|base| RunCgroup::create(base).ok());
    // SAFETY: getuid has no preconditions.
    let expected = if setting.switching {
        user.uid
    } else {
        unsafe { libc::getuid() }
    };
    let entered = sandbox::enter_keeping_setpcap(user).and_then(|()| {
        // SAFETY: getuid/geteuid have no preconditions.
        let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
        if uid == expected && euid == expected {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "still uid {uid}, euid {euid}, not {expected}"
            )))
        }
    });
    if let Err(e) = entered {
        return refuse(stream, format!("becoming user {}: {e}", user.name));
    }
    let request = wire::read_request(stream)?;
    let mut runner = Runner::new(
        request.argv,
        request.env,
        request.timeout,
        request.output_limit,
    );
    runner.set_stdin(request.stdin);
    let (_, bounding) = runner.executable();
    if let Err(e) = sandbox::settle(bounding) {
        return refuse(stream, format!("dropping capabilities: {e}"));
    }
    let result = runner.run_here(sandbox, cgroup.as_ref().map(RunCgroup::join_fd));
    if let Some(cgroup) = &cgroup {
        let _ = cgroup.kill(Instant::now() + KILL_WAIT);
    }
    contain::reap_descendants();
    let reply = Reply {
        outcome: outcome_of(&result),
        stdout: std::mem::take(&mut runner.stdout),
        stderr: std::mem::take(&mut runner.stderr),
    };
    wire::write_reply(stream, &reply)
}

fn outcome_of(result: &Result<super::Exit, CommandError>) -> Outcome {
    let errno_message = |e: &io::Error| (e.raw_os_error(), e.to_string());
    match result {
        Ok(super::Exit::Code(code)) => Outcome::Exit { code: *code },
        Ok(super::Exit::Signal(signal)) => Outcome::Signal { signal: *signal },
        Err(CommandError::Spawn { source, .. }) => {
            let (errno, message) = errno_message(source);
            Outcome::Spawn { errno, message }
        }
        Err(CommandError::Timeout { .. }) => Outcome::Timeout,
        Err(CommandError::TooMuchOutput { .. }) => Outcome::TooMuchOutput,
        Err(CommandError::Io { call, source, .. }) => {
            let (errno, message) = errno_message(source);
            Outcome::Io {
                call: (*call).to_owned(),
                errno,
                message,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        // SAFETY: fresh descriptors we own.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    #[test]
    fn a_socket_crosses_and_end_of_file_ends_the_stream() {
        let (a, b) = seqpacket_pair();
        let (mut mine, theirs) = UnixStream::pair().unwrap();
        send_fd(a.as_fd(), theirs.as_fd()).unwrap();
        drop(theirs);
        let received = recv_fd(b.as_raw_fd()).unwrap().expect("a descriptor");
        // SAFETY: F_GETFD on a descriptor we own.
        let flags = unsafe { libc::fcntl(received.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "received close-on-exec");
        let mut peer = UnixStream::from(received);
        peer.write_all(b"over").unwrap();
        drop(peer);
        let mut got = Vec::new();
        mine.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"over");
        drop(a);
        assert!(recv_fd(b.as_raw_fd()).unwrap().is_none(), "end of file");
    }

    #[test]
    fn a_message_without_a_descriptor_is_skipped() {
        let (a, b) = seqpacket_pair();
        // SAFETY: a one-byte buffer, valid for the call.
        let sent = unsafe { libc::send(a.as_raw_fd(), [0u8].as_ptr().cast(), 1, 0) };
        assert_eq!(sent, 1);
        let (_mine, theirs) = UnixStream::pair().unwrap();
        send_fd(a.as_fd(), theirs.as_fd()).unwrap();
        assert!(recv_fd(b.as_raw_fd()).unwrap().is_some());
    }

    #[test]
    fn a_late_reply_times_out() {
        let (mine, _theirs) = UnixStream::pair().unwrap();
        let mut r = Deadlined {
            stream: &mine,
            deadline: Instant::now() + std::time::Duration::from_millis(50),
        };
        let e = r.read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
