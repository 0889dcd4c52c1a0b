//! Containing runs: nothing a command starts outlives its collection.
//!
//! A process group is not enough: `setsid` or a double fork leaves it,
//! and such leftovers piled up until the unit's `TasksMax` made every
//! command fail with EAGAIN. Two mechanisms, both in the per-run
//! supervisor the launcher forks (a process of its own, one thread):
//!
//! - **a cgroup per run**, where blippd's own cgroup v2 is delegated to it
//!   (`Delegate=yes`; systemd marks such a cgroup with the
//!   `trusted.delegate` or `user.delegate` attribute) and the kernel has
//!   `cgroup.kill` (5.14). At start-up blippd moves itself into the leaf
//!   `<own>/blippd` (cgroup v2 lets only leaves hold processes once
//!   controllers are enabled below a cgroup); each supervisor creates
//!   `<own>/run-<pid>` and opens its files while it is still root, its
//!   command moves itself there before exec through that descriptor, and
//!   the supervisor kills the cgroup as a whole with `cgroup.kill` once the
//!   command has exited or timed out. Kernels with the fix for
//!   CVE-2021-4197 (early 2022) check such a move against the credentials
//!   the descriptor was opened with; blippd tries one at start-up. No
//!   process can leave a cgroup without write access to an ancestor's
//!   `cgroup.procs`, which a command user other than blippd's own has for
//!   none.
//! - **a child subreaper** (`PR_SET_CHILD_SUBREAPER`), always: whatever
//!   the command orphans is reparented to the supervisor instead of init,
//!   so after the command's exit the supervisor kills and reaps its
//!   children generation by generation until it has none. Only its own
//!   unreaped children are signalled, so no pid can have been reused.
//!
//! The launcher removes the run cgroups of finished supervisors.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The leaf blippd and its launcher live in, beside the runs' cgroups.
const LEAF: &str = "blippd";
/// The prefix of a run's cgroup, followed by its supervisor's pid.
const RUN_PREFIX: &str = "run-";
/// The cgroup blippd tries a move in at start-up.
const TRIAL: &str = "trial";

/// blippd's delegated cgroup, under which each run gets its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base {
    dir: PathBuf,
}

impl Base {
    /// The delegated cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The mount point of the cgroup v2 hierarchy in a mountinfo text.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let dash = fields.iter().position(|f| *f == "-")?;
        let mount = fields.get(4)?;
        (fields.get(dash + 1) == Some(&"cgroup2")).then(|| PathBuf::from(mount))
    })
}

/// The cgroup v2 path in a /proc/PID/cgroup text (its `0::` line).
fn own_path(cgroup: &str) -> Option<&str> {
    cgroup.lines().find_map(|l| l.strip_prefix("0::"))
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Whether systemd (or whoever manages the tree) delegated `dir`.
fn delegated(dir: &Path) -> bool {
    let Ok(path) = c_path(dir) else {
        return false;
    };
    [c"trusted.delegate", c"user.delegate"].iter().any(|name| {
        let mut value = [0u8; 8];
        // SAFETY: NUL-terminated path and name; the buffer's length is
        // passed with it.
        let n = unsafe {
            libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        n == 1 && value[0] == b'1'
    })
}

fn mkdir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Moves process `pid` (0: the caller) into the cgroup `dir`.
fn move_into(dir: &Path, pid: libc::pid_t) -> io::Result<()> {
    fs::write(dir.join("cgroup.procs"), pid.to_string())
}

/// Whether a process that becomes `user` can still move itself into a
/// cgroup through a `cgroup.procs` descriptor opened before, as each
/// run's command does: a child tries it in `dir`.
fn move_by_descriptor_works(dir: &Path, user: (libc::uid_t, libc::gid_t)) -> io::Result<bool> {
    let trial = dir.join(TRIAL);
    mkdir(&trial)?;
    let procs = open(&trial.join("cgroup.procs"), libc::O_WRONLY);
    let moved = procs.and_then(|procs| {
        // SAFETY: the caller has one thread; the child makes system calls
        // only and ends with _exit.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => unsafe {
                let (uid, gid) = user;
                let ok = libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>())
                    == 0
                    && libc::syscall(libc::SYS_setresgid, gid, gid, gid) == 0
                    && libc::syscall(libc::SYS_setresuid, uid, uid, uid) == 0
                    && join(procs.as_raw_fd()).is_ok();
                libc::_exit(i32::from(!ok))
            },
            child => {
                let mut status = 0;
                // SAFETY: waiting for our own child; `status` is valid.
                while unsafe { libc::waitpid(child, &raw mut status, 0) } < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
                Ok(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
            }
        }
    });
    let _ = fs::remove_dir(&trial);
    moved
}

/// Finds blippd's cgroup and, when it is delegated and can kill a whole
/// cgroup, moves blippd into its leaf and removes runs a previous blippd
/// left. `user` is the command user blippd's launcher switches to, if it
/// does. Call it while blippd has one thread, before forking the
/// launcher, which inherits the leaf. The error says why runs are not
/// put in cgroups.
pub fn prepare(user: Option<(libc::uid_t, libc::gid_t)>) -> Result<Base, String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let mount = cgroup2_mount(&mountinfo).ok_or("no cgroup v2 hierarchy is mounted")?;
    let cgroup = fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let own = own_path(&cgroup).ok_or("blippd is in no cgroup v2")?;
    let rel = own.trim_start_matches('/');
    if rel.is_empty() {
        return Err("blippd is in the root cgroup".into());
    }
    let dir = mount.join(rel);
    if !delegated(&dir) {
        return Err(format!(
            "{} is not delegated to blippd (Delegate=yes in its unit)",
            dir.display()
        ));
    }
    if !dir.join("cgroup.kill").exists() {
        return Err("this kernel has no cgroup.kill (Linux 5.14)".into());
    }
    if let Some(user) = user {
        match move_by_descriptor_works(&dir, user) {
            Ok(true) => {}
            Ok(false) => {
                return Err(
                    "this kernel checks a move into a cgroup against the mover, not the descriptor's opener (CVE-2021-4197)"
                        .into(),
                );
            }
            Err(e) => return Err(format!("trying a move in {}: {e}", dir.display())),
        }
    }
    let leaf = dir.join(LEAF);
    mkdir(&leaf)
        .and_then(|()| move_into(&leaf, 0))
        .map_err(|e| format!("moving into {}: {e}", leaf.display()))?;
    let base = Base { dir };
    sweep(&base);
    Ok(base)
}

/// Removes the cgroups of runs whose supervisor is gone, killing first
/// whatever is still in them (only a supervisor that died before its
/// clean-up leaves any). Runs still going are left alone.
pub fn sweep(base: &Base) {
    let Ok(entries) = fs::read_dir(&base.dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(RUN_PREFIX))
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists; a reused
        // pid merely keeps the cgroup until a later sweep.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let run = entry.path();
            if fs::remove_dir(&run).is_err() {
                let _ = fs::write(run.join("cgroup.kill"), "1");
            }
        }
    }
}

/// A run's cgroup, set up by its supervisor while it is still root.
#[derive(Debug)]
pub struct RunCgroup {
    /// `cgroup.procs`: the command writes `0` there before exec.
    join: OwnedFd,
    kill: OwnedFd,
    events: OwnedFd,
}

fn open(path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    // SAFETY: a NUL-terminated path; the descriptor returned is ours.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl RunCgroup {
    /// Creates `run-<pid>` under `base` for the calling supervisor and
    /// opens its files while the supervisor may: the command, run as
    /// another user, moves itself in through the descriptor.
    pub fn create(base: &Base) -> io::Result<Self> {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let run = base.dir.join(format!("{RUN_PREFIX}{pid}"));
        mkdir(&run)?;
        Ok(Self {
            join: open(&run.join("cgroup.procs"), libc::O_WRONLY)?,
            kill: open(&run.join("cgroup.kill"), libc::O_WRONLY)?,
            events: open(&run.join("cgroup.events"), libc::O_RDONLY)?,
        })
    }

    /// The descriptor a command's `pre_exec` hook writes `0` to, to move
    /// itself into the run's cgroup ([`join`]).
    pub fn join_fd(&self) -> RawFd {
        self.join.as_raw_fd()
    }

    fn populated(&self) -> io::Result<bool> {
        let mut text = [0u8; 256];
        // SAFETY: the buffer's length is passed with it; cgroup files
        // are read whole from offset 0.
        let n = unsafe {
            libc::pread(
                self.events.as_raw_fd(),
                text.as_mut_ptr().cast(),
                text.len(),
                0,
            )
        };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        Ok(String::from_utf8_lossy(&text[..n])
            .lines()
            .any(|l| l == "populated 1"))
    }

    /// Kills every process in the run's cgroup and waits, until
    /// `deadline`, for the cgroup to be empty (`cgroup.events` signals the
    /// change with `POLLPRI`).
    pub fn kill(&self, deadline: Instant) -> io::Result<()> {
        // SAFETY: a one-byte buffer, valid for the call.
        if unsafe { libc::write(self.kill.as_raw_fd(), b"1".as_ptr().cast(), 1) } < 0 {
            return Err(io::Error::last_os_error());
        }
        while self.populated()? {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let mut fd = libc::pollfd {
                fd: self.events.as_raw_fd(),
                events: libc::POLLPRI,
                revents: 0,
            };
            let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&raw mut fd, 1, ms) } < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is
/// `fd`. Only a system call: safe in a `pre_exec` hook.
pub fn join(fd: RawFd) -> io::Result<()> {
    // SAFETY: a one-byte buffer, valid for the call.
    if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the calling process the reaper of whatever its descendants
/// orphan.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The children of the calling single-threaded process, zombies
/// included: its `children` file, else every process whose parent it is.
fn children() -> Vec<libc::pid_t> {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    if let Ok(list) = fs::read_to_string(format!("/proc/self/task/{me}/children")) {
        return list
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
    }
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            let mut stat = String::new();
            fs::File::open(format!("/proc/{pid}/stat"))
                .and_then(|mut f| f.read_to_string(&mut stat))
                .is_ok()
                && parent_in_stat(&stat) == Some(me)
        })
        .collect()
}

/// The parent pid in a /proc/PID/stat line (the field after the state,
/// which follows the command name's closing parenthesis).
fn parent_in_stat(stat: &str) -> Option<libc::pid_t> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Kills and reaps every descendant of the calling subreaper: its
/// children, then the grandchildren reparented to it when those died,
/// and so on until it has none. Returns how many processes it killed.
pub fn reap_descendants() -> usize {
    let mut killed = 0;
    loop {
        let generation = children();
        if generation.is_empty() {
            return killed;
        }
        for &pid in &generation {
            // SAFETY: `pid` is an unreaped child of this process, so it
            // cannot have been reused.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
        for &pid in &generation {
            let mut status = 0;
            // SAFETY: waiting for one of our children; `status` is valid.
            while unsafe { libc::waitpid(pid, &raw mut status, 0) } < 0
                && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
            {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_among_v1_ones() {
        let info = "\
30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
";
        assert_eq!(
            cgroup2_mount(info),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup2_mount("31 30 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw"),
            None
        );
    }

    #[test]
    fn the_v2_line_of_proc_cgroup() {
        let hybrid = "4:memory:/x\n1:name=systemd:/system.slice/blippd.service\n0::/system.slice/blippd.service\n";
        assert_eq!(own_path(hybrid), Some("/system.slice/blippd.service"));
        assert_eq!(own_path("4:memory:/x\n"), None);
    }

    #[test]
    fn parent_pid_after_a_name_with_parentheses() {
        assert_eq!(parent_in_stat("42 (a) b) S 17 42 42 0"), Some(17));
        assert_eq!(parent_in_stat("42 (sh) R"), None);
    }
}
