//! `-D/--daemonize` and `--pid-file`, which the original's unit and init
//! scripts pass (`blippd -D -l FILE`). Detaching is the classic double
//! fork: the process the shell (or an init script) started waits until
//! the daemon has written its pid file, then exits 0, so that a failure
//! to write it is still an exit status someone sees. The daemon is in a
//! session of its own, with no controlling terminal, and its standard
//! streams on /dev/null: its log must go to a file (`-l`). It keeps its
//! working directory, unlike python-daemon's default of `/`, so that the
//! relative paths of a configuration keep their meaning.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The pid file, removed when blippd ends if it still names this process.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's pid to `path`.
    pub fn write(path: &Path) -> io::Result<Self> {
        let mut f = File::create(path)?;
        writeln!(f, "{}", std::process::id())?;
        f.sync_all()?;
        Ok(Self::adopt(path))
    }

    /// The pid file an earlier image of this process wrote (blippd
    /// re-executes itself under the same pid after loading).
    pub fn adopt(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path)
            .is_ok_and(|t| t.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Detaches this process as a daemon, writing `pid_file` from the daemon.
/// Returns in the daemon only: the process that called it exits 0 once
/// the daemon is ready, or 1 if the daemon could not get there (its error
/// is on the caller's stderr).
///
/// # Safety
///
/// The process must have one thread: the daemon is a forked child, which
/// would inherit no other thread and possibly their locks.
pub unsafe fn detach(pid_file: Option<&Path>) -> io::Result<Option<PidFile>> {
    let mut fds = [0; 2];
    // SAFETY: a two-element array for pipe2.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors were just created and are owned here.
    let (ready_r, ready_w) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: one thread, as the caller promises.
    if check(unsafe { libc::fork() })? > 0 {
        drop(ready_w);
        // The daemon writes one byte once it is ready; end of file means
        // it failed (and said why on this stderr, which it still had).
        let mut byte = [0u8; 1];
        let ok = File::from(ready_r).read(&mut byte).is_ok_and(|n| n == 1);
        std::process::exit(i32::from(!ok));
    }
    drop(ready_r);
    // SAFETY: plain system calls in the single-threaded child.
    unsafe {
        check(libc::setsid())?;
        // The session leader exits: the daemon can never acquire a
        // controlling terminal again.
        if check(libc::fork())? > 0 {
            libc::_exit(0);
        }
    }
    let pid = match pid_file {
        Some(path) => Some(PidFile::write(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("writing the pid file {}: {e}", path.display()),
            )
        })?),
        None => None,
    };
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors.
        check(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
    }
    // After the streams moved: nothing more can be said on the caller's
    // stderr, so readiness is told last.
    File::from(ready_w).write_all(&[1])?;
    Ok(pid)
}
