//! What the shipped eBPF unit (packaging/systemd/blippd.service) makes of
//! blippd's process, done here the way systemd does it before executing
//! blippd: its memlock limit, its bounding set, its user with the
//! ambient capabilities, no new privileges. The guest has no systemd; the
//! unit file itself is read, so the run follows the unit as shipped.

use std::io;

const UNIT: &str = include_str!("../../../packaging/systemd/blippd.service");

/// The unit's identity and limits for blippd.
#[derive(Clone, Copy, Debug)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub ambient: u64,
    pub bounding: u64,
    pub memlock_unlimited: bool,
    pub no_new_privs: bool,
}

/// The value of the unit's `key=` line.
fn setting<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
}

/// The mask of a list of `CAP_` names, or the first name not known.
fn caps(list: &str) -> Result<u64, String> {
    list.split_whitespace().try_fold(0u64, |m, name| {
        blipp::source::ebpf::caps::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|bit| m | 1 << bit)
            .ok_or_else(|| format!("unknown capability {name}"))
    })
}

/// The unit's identity, `uid` and `gid` being what its `User=` (which
/// `user` must name) has in this guest.
pub fn identity(uid: u32, gid: u32, user: &str) -> Result<Identity, String> {
    parse(UNIT, uid, gid, user)
}

fn parse(unit: &str, uid: u32, gid: u32, user: &str) -> Result<Identity, String> {
    let named = setting(unit, "User").ok_or("no User= in the unit")?;
    if named != user {
        return Err(format!("the unit runs as {named}, the guest made {user}"));
    }
    Ok(Identity {
        uid,
        gid,
        ambient: caps(setting(unit, "AmbientCapabilities").unwrap_or(""))?,
        // systemd's default bounding set: everything.
        bounding: setting(unit, "CapabilityBoundingSet").map_or(Ok(u64::MAX), caps)?,
        memlock_unlimited: setting(unit, "LimitMEMLOCK") == Some("infinity"),
        no_new_privs: setting(unit, "NoNewPrivileges") == Some("yes"),
    })
}

fn check(rc: libc::c_long) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Becomes the unit's user holding its ambient capabilities. Only system
/// calls, no allocation: it runs between fork and exec.
pub fn enter(id: &Identity) -> io::Result<()> {
    // SAFETY: every call below takes integers or pointers to locals that
    // outlive it; none allocates.
    unsafe {
        if id.memlock_unlimited {
            let unlimited = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            check(libc::setrlimit(libc::RLIMIT_MEMLOCK, &raw const unlimited).into())?;
        }
        for cap in 0..64u64 {
            if id.bounding & 1 << cap == 0
                && libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0
                && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
            {
                return Err(io::Error::last_os_error());
            }
        }
        // Keep the permitted set across the switch away from root.
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0).into())?;
        check(libc::syscall(
            libc::SYS_setgroups,
            0,
            std::ptr::null::<libc::gid_t>(),
        ))?;
        check(libc::syscall(libc::SYS_setresgid, id.gid, id.gid, id.gid))?;
        check(libc::syscall(libc::SYS_setresuid, id.uid, id.uid, id.uid))?;
        // Ambient capabilities must be permitted and inheritable.
        let mut header = CapHeader {
            version: 0x2008_0522,
            pid: 0,
        };
        let word = |w: u64| CapData {
            effective: w as u32,
            permitted: w as u32,
            inheritable: w as u32,
        };
        let data = [word(id.ambient), word(id.ambient >> 32)];
        check(libc::syscall(
            libc::SYS_capset,
            &raw mut header,
            data.as_ptr(),
        ))?;
        for cap in 0..64u64 {
            if id.ambient & 1 << cap != 0 {
                check(
                    libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, cap, 0, 0).into(),
                )?;
            }
        }
        if id.no_new_privs {
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).into())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_unit_runs_as_a_user_with_ambient_capabilities() {
        let id = identity(999, 998, "blipp").unwrap();
        assert_eq!((id.uid, id.gid), (999, 998));
        // CAP_BPF (39) to load, CAP_SETUID (7) for the launcher.
        assert_ne!(id.ambient & 1 << 39, 0);
        assert_ne!(id.ambient & 1 << 7, 0);
        assert_eq!(id.ambient & !id.bounding, 0, "ambient within bounding");
        assert!(id.no_new_privs && id.memlock_unlimited);
        assert!(identity(999, 998, "root").is_err());
    }

    #[test]
    fn unknown_capabilities_and_missing_users_are_refused() {
        let unit = "User=blipp\nAmbientCapabilities=CAP_BPF CAP_NOPE\n";
        assert_eq!(
            parse(unit, 1, 1, "blipp").unwrap_err(),
            "unknown capability CAP_NOPE"
        );
        assert!(parse("AmbientCapabilities=\n", 1, 1, "blipp").is_err());
        let id = parse("User=blipp\nAmbientCapabilities=\n", 1, 1, "blipp").unwrap();
        assert_eq!((id.ambient, id.bounding), (0, u64::MAX));
        assert!(!id.no_new_privs && !id.memlock_unlimited);
    }
}
