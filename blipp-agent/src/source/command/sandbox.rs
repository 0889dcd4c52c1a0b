//! The setting every command runs in: an unprivileged user, no
//! capabilities, no way to gain privileges, bounded resources.
//!
//! A command comes from configuration that may, later, come from UNIS; it
//! must not inherit blippd's root user or its capabilities, and a setuid
//! program it starts must not give them back (`PR_SET_NO_NEW_PRIVS`).
//! [`enter`] makes that transition in a process that is about to become
//! the command (a `pre_exec` hook) or to supervise it (the launcher's
//! per-run process), doing everything the caller's privileges allow and
//! failing only where a step that should work does not.

use std::ffi::CString;
use std::io;
use std::sync::OnceLock;

/// The user commands run as unless `command_user` names another, when it
/// exists (`cargo xtask install` creates it): a user of its own, so that
/// `RLIMIT_NPROC`, which counts every process of a user, counts only
/// blipp's commands.
pub const DEFAULT_USER: &str = "blipp-cmd";
/// The fallback when [`DEFAULT_USER`] does not exist.
pub const FALLBACK_USER: &str = "nobody";

/// A user commands run as, looked up in the passwd database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Its name, as configured.
    pub name: String,
    /// Its uid, never 0.
    pub uid: libc::uid_t,
    /// Its primary group, the only group commands keep.
    pub gid: libc::gid_t,
}

/// Looks `name` up in the passwd database; `Ok(None)` when there is no such
/// user.
pub fn lookup(name: &str) -> io::Result<Option<Account>> {
    let Ok(c_name) = CString::new(name) else {
        return Ok(None);
    };
    // SAFETY: an all-zero passwd is a valid value for getpwnam_r to fill.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: every pointer is valid for the call; buf's length is
        // passed with it.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &raw mut pw,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &raw mut found,
            )
        };
        match rc {
            0 if found.is_null() => return Ok(None),
            0 => {
                return Ok(Some(Account {
                    name: name.to_owned(),
                    uid: pw.pw_uid,
                    gid: pw.pw_gid,
                }));
            }
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            // Some C libraries say "no such user" with an error code.
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// Resource limits of every command (soft and hard alike, so that it
/// cannot raise them). The defaults are generous for a check or a
/// measurement, which reads a little and prints a line, and small enough
/// that a runaway one cannot take the host down with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `RLIMIT_CPU`: a minute of CPU, six times the default wall-clock
    /// timeout; only a command whose timeout was raised and which spins
    /// meets it.
    pub cpu_seconds: u64,
    /// `RLIMIT_AS`, MiB: 1 GiB of address space, room for an interpreter
    /// (Python, Perl plugins map 100-300 MiB) without letting a leak eat
    /// the host's memory.
    pub address_space_mb: u64,
    /// `RLIMIT_NPROC`: processes of the command user, all runs together;
    /// a plugin pipes through a few programs, a fork bomb stops here.
    pub processes: u64,
    /// `RLIMIT_NOFILE`: a plugin opens a few files and sockets; 256 is
    /// what it may need and far below what could exhaust the system.
    pub open_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_seconds: 60,
            address_space_mb: 1024,
            processes: 64,
            open_files: 256,
        }
    }
}

impl Limits {
    fn table(&self) -> [(Resource, u64); 4] {
        [
            (libc::RLIMIT_CPU, self.cpu_seconds),
            (
                libc::RLIMIT_AS,
                self.address_space_mb.saturating_mul(1024 * 1024),
            ),
            (libc::RLIMIT_NPROC, self.processes),
            (libc::RLIMIT_NOFILE, self.open_files),
        ]
    }
}

#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

/// Who commands run as and with what limits: service-wide, fixed at
/// start-up (see [`configure`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sandbox {
    /// The command user.
    pub user: Account,
    /// The command's resource limits.
    pub limits: Limits,
}

static CONFIGURED: OnceLock<Sandbox> = OnceLock::new();

/// Fixes the sandbox of every command this process runs; blippd calls it
/// once at start-up with what its configuration says. A second call
/// changes nothing (the keys are read at start-up only).
pub fn configure(sandbox: Sandbox) {
    let _ = CONFIGURED.set(sandbox);
}

/// The sandbox [`configure`] fixed, else the default one (the library and
/// its tests): the default user, or `nobody`'s usual ids where even the
/// passwd database has none.
pub fn current() -> &'static Sandbox {
    CONFIGURED.get_or_init(|| {
        let user = [DEFAULT_USER, FALLBACK_USER]
            .into_iter()
            .find_map(|name| lookup(name).ok().flatten().filter(|a| a.uid != 0))
            .unwrap_or_else(|| Account {
                name: FALLBACK_USER.to_owned(),
                uid: 65534,
                gid: 65534,
            });
        Sandbox {
            user,
            limits: Limits::default(),
        }
    })
}

/// The capability numbers this kernel may know; `PR_CAPBSET_DROP` of a
/// higher one fails with EINVAL, which is skipped.
const CAP_MAX: u32 = 63;
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
const CAP_SETPCAP: u32 = 8;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn check(rc: libc::c_long) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// This thread's effective capability set, as a 64-bit mask.
pub fn effective() -> io::Result<u64> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: a header and two data words, as version 3 requires;
    // async-signal-safe (a plain system call).
    check(unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) })?;
    Ok(u64::from(data[1].effective) << 32 | u64::from(data[0].effective))
}

/// Sets this thread's effective, permitted and inheritable sets to `keep`.
pub fn capset(keep: u64) -> io::Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let word = |w: u64| CapData {
        effective: w as u32,
        permitted: w as u32,
        inheritable: 0,
    };
    let data = [word(keep), word(keep >> 32)];
    // SAFETY: as in `effective`.
    check(unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) })
}

/// Removes every capability not in `keep` from the bounding set. EINVAL
/// (a number this kernel does not know) is skipped; EPERM (no
/// `CAP_SETPCAP`) is returned.
pub fn drop_bounding(keep: u64) -> io::Result<()> {
    for cap in 0..=CAP_MAX {
        if keep & 1 << cap != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments; async-signal-safe.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Whether this thread can switch to another user (`CAP_SETUID` and
/// `CAP_SETGID` effective).
pub fn can_switch_user() -> bool {
    let both = 1 << CAP_SETUID | 1 << CAP_SETGID;
    effective().is_ok_and(|e| e & both == both)
}

/// The mask of `caps`.
pub const fn mask(caps: &[u32]) -> u64 {
    let mut m = 0;
    let mut i = 0;
    while i < caps.len() {
        m |= 1 << caps[i];
        i += 1;
    }
    m
}

/// Applies `limits` to this process, soft and hard, never above the hard
/// limit it already has (raising it would need `CAP_SYS_RESOURCE`).
pub fn apply_limits(limits: &Limits) -> io::Result<()> {
    for (resource, value) in limits.table() {
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `now` is a valid rlimit to fill; async-signal-safe.
        check(unsafe { libc::getrlimit(resource, &raw mut now) }.into())?;
        let value = value.min(now.rlim_max);
        let new = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: as above.
        check(unsafe { libc::setrlimit(resource, &raw const new) }.into())?;
    }
    Ok(())
}

/// Switches this thread to `user` with only its primary group: groups,
/// then gid, then uid, since after the uid the other two are no longer
/// allowed. The raw system calls act on the calling thread only (libc's
/// wrappers would signal every thread, which a `pre_exec` hook must not);
/// the callers' process has, or will have after `exec`, one thread.
fn switch_user(user: &Account) -> io::Result<()> {
    let groups = [user.gid];
    // SAFETY: one gid, valid for the call; plain system calls,
    // async-signal-safe.
    unsafe {
        check(libc::syscall(libc::SYS_setgroups, 1, groups.as_ptr()))?;
        check(libc::syscall(
            libc::SYS_setresgid,
            user.gid,
            user.gid,
            user.gid,
        ))?;
        check(libc::syscall(
            libc::SYS_setresuid,
            user.uid,
            user.uid,
            user.uid,
        ))
    }
}

/// Makes this process unprivileged for good: the bounding set emptied but
/// for `bounding` (where `CAP_SETPCAP` allows it: see
/// [`filecaps`](super::filecaps) for what a run keeps), ambient
/// capabilities cleared, the user switched to `user` with only its primary group (where
/// `CAP_SETUID` and `CAP_SETGID` allow it and it is not that user
/// already), every capability set emptied, no new privileges, and
/// `limits` when given.
///
/// Only system calls, no allocation: safe in a `pre_exec` hook of a
/// multi-threaded parent. The user switch uses the raw system calls,
/// which act on the calling thread only; a process that calls this has,
/// or will have after `exec`, one thread.
pub fn enter(user: &Account, limits: Option<&Limits>, bounding: u64) -> io::Result<()> {
    let switch = can_switch_user();
    // Only the bounding set needs CAP_SETPCAP; without it (a supervisor
    // that already set it, or no privileges to start with) it stays as
    // it is.
    let _ = drop_bounding(bounding);
    // SAFETY: prctl with integer arguments.
    check(
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        }
        .into(),
    )?;
    if let Some(limits) = limits {
        apply_limits(limits)?;
    }
    // SAFETY: geteuid has no preconditions.
    if switch && unsafe { libc::geteuid() } != user.uid {
        switch_user(user)?;
    }
    capset(0)?;
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }.into())?;
    Ok(())
}

/// The supervisor's half of [`enter`], before it knows which program it
/// will run: ambient capabilities cleared, the user switched to `user`
/// (where `CAP_SETUID` and `CAP_SETGID` allow it), no new privileges, and
/// every capability dropped but `CAP_SETPCAP`, which [`settle`] needs to
/// set the run's bounding set once the program is known.
pub fn enter_keeping_setpcap(user: &Account) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    check(
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        }
        .into(),
    )?;
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }.into())?;
    let held = effective()?;
    // SAFETY: geteuid has no preconditions.
    if can_switch_user() && unsafe { libc::geteuid() } != user.uid {
        // The permitted set survives the switch (PR_SET_KEEPCAPS), the
        // effective one is set again below.
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) }.into())?;
        switch_user(user)?;
        // SAFETY: as above.
        check(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) }.into())?;
    }
    capset(held & 1 << CAP_SETPCAP)
}

/// The supervisor's other half: the bounding set cut to `bounding`, then
/// every capability dropped.
pub fn settle(bounding: u64) -> io::Result<()> {
    let _ = drop_bounding(bounding);
    capset(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_nobody_are_found_and_nonsense_is_not() {
        let root = lookup("root").unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(lookup("blipp-no-such-user-here").unwrap().is_none());
        assert!(lookup("a\0b").unwrap().is_none());
        assert!(lookup("").unwrap().is_none());
    }

    #[test]
    fn limits_in_the_kernels_units() {
        let t = Limits::default().table();
        assert_eq!(t[0], (libc::RLIMIT_CPU, 60));
        assert_eq!(t[1], (libc::RLIMIT_AS, 1024 * 1024 * 1024));
        assert_eq!(t[2], (libc::RLIMIT_NPROC, 64));
        assert_eq!(t[3], (libc::RLIMIT_NOFILE, 256));
    }

    #[test]
    fn masks() {
        assert_eq!(mask(&[CAP_SETGID, CAP_SETUID]), 0xc0);
        assert_eq!(mask(&[]), 0);
    }
}
