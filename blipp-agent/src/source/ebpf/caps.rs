//! Dropping, once start-up is over, every capability blippd does not use
//! afterwards.
//!
//! Once the programs are attached (or when none is), reading their maps,
//! ring buffers and statistics needs only the file descriptors the agent
//! already holds, and the commands of `cmd` and `nagios` probes run
//! through the launcher (see
//! [`launcher`](crate::source::command::launcher)), which was forked before
//! this drop and keeps what switching users needs. What is kept, in the
//! effective, permitted and bounding sets, is [`KEPT`]: reading other
//! users' /proc/PID files. Everything else goes, from every set, and last
//! `CAP_SETPCAP`, which emptying the bounding set needs and nothing after
//! it does. A probe restarted later (a configuration change) cannot load
//! programs any more and falls back to /proc, saying so.
//!
//! Not kept, although earlier versions did: `CAP_NET_ADMIN`. The link
//! speed queries are reads that the kernel allows every user:
//! `ETHTOOL_MSG_LINKMODES_GET` is a generic netlink operation without
//! `GENL_ADMIN_PERM` (net/ethtool/netlink.c flags only the `_SET` ones),
//! and `ETHTOOL_GLINKSETTINGS`/`ETHTOOL_GSET` are in the list of
//! `SIOCETHTOOL` commands `dev_ethtool` runs without `CAP_NET_ADMIN`
//! (net/ethtool/ioctl.c). `CAP_SYS_RESOURCE` (memlock before 5.11) is a
//! loading need.
//!
//! Kernels before 5.11 or so check `CAP_BPF` (or `CAP_SYS_ADMIN`) on every
//! `bpf()` call while unprivileged BPF is disabled (Debian's default), map
//! reads included. So the drop is tried on the effective set first, a map
//! is read, and where that fails `CAP_BPF` is kept.

use super::sys::{self, Call, CapData as Data, CapHeader as Header};

/// The capabilities only loading needed, by number (linux/capability.h);
/// named in the log. Every other capability not in [`KEPT`] goes too.
pub const DROPPED: [(u32, &str); 5] = [
    (21, "CAP_SYS_ADMIN"),
    (16, "CAP_SYS_MODULE"),
    (17, "CAP_SYS_RAWIO"),
    (38, "CAP_PERFMON"),
    (39, "CAP_BPF"),
];

/// What blippd keeps after start-up, and why: the `process` probe reads
/// /proc/PID/io, fd/ and status of every user's processes, which needs
/// ptrace read access (`CAP_SYS_PTRACE`) and search permission on
/// directories of other users (`CAP_DAC_READ_SEARCH`).
pub const KEPT: [(u32, &str); 2] = [(19, "CAP_SYS_PTRACE"), (2, "CAP_DAC_READ_SEARCH")];

/// Dropped last: removing a capability from the bounding set needs it in
/// the effective set, itself included, and nothing afterwards does.
pub const SETPCAP: (u32, &str) = (8, "CAP_SETPCAP");

/// The names of capabilities 0 to 40 (linux/capability.h), for the log.
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The names of the capabilities in `mask`.
pub fn names(mask: u64) -> Vec<&'static str> {
    (0..64u32)
        .filter(|c| mask & 1 << c != 0)
        .map(|c| NAMES.get(c as usize).copied().unwrap_or("CAP_UNKNOWN"))
        .collect()
}

/// Why the capabilities could not all be dropped.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// capget failed.
    #[error("reading the capability sets: {0}")]
    Get(std::io::Error),
    /// capset failed.
    #[error("changing the capability sets: {0}")]
    Set(std::io::Error),
    /// `PR_CAPBSET_DROP` failed: typically EPERM, `CAP_SETPCAP` not held
    /// (a systemd unit whose `CapabilityBoundingSet=` leaves it out).
    #[error("dropping {cap} from the bounding set, which needs CAP_SETPCAP: {source}")]
    Bounding {
        /// The first capability that could not be dropped.
        cap: &'static str,
        /// What prctl said.
        source: std::io::Error,
    },
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// What [`drop_to_runtime`] left.
#[derive(Debug, PartialEq, Eq)]
pub struct Dropped {
    /// The capabilities still held (effective and permitted), a mask.
    pub kept: u64,
    /// `CAP_BPF` is among them because this kernel wants it for map reads.
    pub bpf_for_maps: bool,
}

const CAP_BPF: u32 = 39;

fn capget() -> Result<(Header, [Data; 2]), CapsError> {
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    sys::call_plain(Call::Capget(&mut header, &mut data)).map_err(CapsError::Get)?;
    Ok((header, data))
}

/// Sets this thread's effective, permitted and inheritable sets.
fn capset(version: u32, data: &[Data; 2]) -> Result<(), CapsError> {
    let mut header = Header { version, pid: 0 };
    sys::call_plain(Call::Capset(&mut header, data)).map_err(CapsError::Set)?;
    Ok(())
}

fn mask_of(data: &[Data; 2], set: impl Fn(&Data) -> u32) -> u64 {
    u64::from(set(&data[1])) << 32 | u64::from(set(&data[0]))
}

/// Data words whose effective and permitted sets are `effective` and
/// `permitted`; inheritable empty, which also empties the ambient set.
fn sets(effective: u64, permitted: u64) -> [Data; 2] {
    let word = |m: u64, w: u32| (m >> (32 * w)) as u32;
    [0, 1].map(|w| Data {
        effective: word(effective, w),
        permitted: word(permitted, w),
        inheritable: 0,
    })
}

/// Gives up every capability but [`KEPT`] and `extra` for the rest of the
/// process's life, and `CAP_BPF` too unless `maps_readable` (given when
/// eBPF maps are in use) says a map read works without it. Capabilities
/// other than the bounding set are per thread: call this before any other
/// thread exists.
///
/// The order matters: the capabilities leave this thread's effective and
/// permitted sets first (all but `CAP_SETPCAP`), so that they are unusable
/// even where the bounding set cannot be changed; then the bounding set,
/// while `CAP_SETPCAP` is still effective; then `CAP_SETPCAP` leaves this
/// thread's sets too, whether the bounding set could be changed or not.
/// Without `CAP_SETPCAP` at all (an unprivileged blippd) the bounding set
/// is left as it is: nothing of it can come back without exec of a
/// privileged file, which `no_new_privs` units forbid.
pub fn drop_to_runtime(
    maps_readable: Option<&dyn Fn() -> bool>,
    extra: u64,
) -> Result<Dropped, CapsError> {
    let kept = KEPT.iter().fold(extra, |m, (c, _)| m | 1 << c);
    let bpf = 1u64 << CAP_BPF;
    let setpcap = 1u64 << SETPCAP.0;
    let (header, data) = capget()?;
    let permitted = mask_of(&data, |d| d.permitted);
    let effective = mask_of(&data, |d| d.effective);
    let bpf_for_maps = match maps_readable {
        Some(readable) => {
            capset(
                header.version,
                &sets(effective & (kept | setpcap), permitted),
            )?;
            !readable()
        }
        None => false,
    };
    let kept = if bpf_for_maps { kept | bpf } else { kept };
    let with_setpcap = permitted & (kept | setpcap);
    capset(header.version, &sets(with_setpcap, with_setpcap))?;
    let bounding = if permitted & setpcap == 0 {
        Ok(())
    } else {
        drop_bounding(kept)
    };
    let last = capset(header.version, &sets(permitted & kept, permitted & kept));
    bounding?;
    last?;
    Ok(Dropped {
        kept: permitted & kept,
        bpf_for_maps,
    })
}

/// Removes every capability not in `kept` from the bounding set
/// (process-wide).
fn drop_bounding(kept: u64) -> Result<(), CapsError> {
    for cap in 0..64u32 {
        if kept & 1 << cap != 0 {
            continue;
        }
        // EINVAL means the kernel does not know the capability (beyond its
        // last one): nothing to drop.
        if let Err(source) = sys::call_plain(Call::CapbsetDrop(cap))
            && source.raw_os_error() != Some(libc::EINVAL)
        {
            return Err(CapsError::Bounding {
                cap: NAMES.get(cap as usize).copied().unwrap_or("CAP_UNKNOWN"),
                source,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_split_a_mask_into_its_words_and_empty_inheritable() {
        let d = sets(1 << SETPCAP.0 | 1 << CAP_BPF, 1 << CAP_BPF);
        assert_eq!((d[0].effective, d[0].permitted), (1 << 8, 0));
        assert_eq!((d[1].effective, d[1].permitted), (1 << 7, 1 << 7));
        assert_eq!((d[0].inheritable, d[1].inheritable), (0, 0));
        assert_eq!(mask_of(&d, |d| d.effective), 1 << 8 | 1 << 39);
    }

    #[test]
    fn names_follow_the_kernels_numbers() {
        for (c, name) in DROPPED.iter().chain(&KEPT).chain([&SETPCAP]) {
            assert_eq!(NAMES[*c as usize], *name);
        }
        assert_eq!(
            names(1 << 19 | 1 << 2),
            ["CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"]
        );
    }

    #[test]
    fn setpcap_and_the_loading_capabilities_are_not_kept() {
        assert!(KEPT.iter().all(|(c, _)| *c != SETPCAP.0));
        assert!(
            KEPT.iter()
                .all(|(k, _)| DROPPED.iter().all(|(d, _)| d != k))
        );
    }
}

/// [`drop_to_runtime`] on a fake kernel: every path, no root needed.
#[cfg(test)]
mod fake_kernel {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::source::ebpf::sys::fake;

    /// The fake kernel's view of this thread.
    #[derive(Default)]
    struct Thread {
        effective: u64,
        permitted: u64,
        bounding: u64,
        /// Every capset's (effective, permitted), in order.
        capsets: Vec<(u64, u64)>,
        /// Capabilities dropped from the bounding set, in order.
        dropped: Vec<u32>,
        /// Errors to answer with.
        capget_errno: Option<i32>,
        capset_errno: Option<i32>,
        bounding_errno: Option<i32>,
    }

    /// The capabilities 0 to 40 this kernel knows.
    const ALL: u64 = (1 << 41) - 1;

    fn mask(caps: &[(u32, &str)]) -> u64 {
        caps.iter().fold(0, |m, (c, _)| m | 1 << c)
    }

    /// Runs [`drop_to_runtime`] on a kernel in the state `thread`.
    fn drop_on(
        thread: Thread,
        maps_readable: Option<&dyn Fn() -> bool>,
    ) -> (Result<Dropped, CapsError>, Thread) {
        let state = Rc::new(RefCell::new(thread));
        let kernel = Rc::clone(&state);
        let result = fake::with(
            move |call| {
                let mut t = kernel.borrow_mut();
                Some(match call {
                    Call::Capget(_, data) => {
                        if let Some(e) = t.capget_errno {
                            return fake::errno(e);
                        }
                        **data = sets(t.effective, t.permitted);
                        Ok(0)
                    }
                    Call::Capset(header, data) => {
                        assert_eq!(header.version, LINUX_CAPABILITY_VERSION_3);
                        if let Some(e) = t.capset_errno {
                            return fake::errno(e);
                        }
                        let (e, p) = (
                            mask_of(data, |d| d.effective),
                            mask_of(data, |d| d.permitted),
                        );
                        // The kernel refuses to raise the permitted set.
                        assert_eq!(p & !t.permitted, 0, "permitted set raised");
                        assert_eq!(e & !p, 0, "effective beyond permitted");
                        t.effective = e;
                        t.permitted = p;
                        t.capsets.push((e, p));
                        Ok(0)
                    }
                    Call::CapbsetDrop(cap) => {
                        if *cap > 40 {
                            return fake::errno(libc::EINVAL);
                        }
                        if let Some(e) = t.bounding_errno {
                            return fake::errno(e);
                        }
                        assert_ne!(t.effective & 1 << SETPCAP.0, 0, "needs CAP_SETPCAP");
                        t.bounding &= !(1 << *cap);
                        t.dropped.push(*cap);
                        Ok(0)
                    }
                    _ => return None,
                })
            },
            || drop_to_runtime(maps_readable, 0),
        );
        let thread = Rc::try_unwrap(state).ok().unwrap().into_inner();
        (result, thread)
    }

    fn root() -> Thread {
        Thread {
            effective: ALL,
            permitted: ALL,
            bounding: ALL,
            ..Thread::default()
        }
    }

    #[test]
    fn root_keeps_only_what_it_needs_in_every_set_and_setpcap_goes_last() {
        let (dropped, t) = drop_on(root(), None);
        let kept = mask(&KEPT);
        assert_eq!(
            dropped.unwrap(),
            Dropped {
                kept,
                bpf_for_maps: false
            }
        );
        assert_eq!((t.effective, t.permitted, t.bounding), (kept, kept, kept));
        let setpcap = 1 << SETPCAP.0;
        assert_eq!(
            t.capsets,
            [(kept | setpcap, kept | setpcap), (kept, kept)],
            "the bounding set is cut while CAP_SETPCAP is still held"
        );
        assert_eq!(t.dropped.len(), 41 - KEPT.len());
    }

    /// Map reads that fail without `CAP_BPF` (kernels before 5.11 or so
    /// with unprivileged BPF off) keep it; the check runs with the
    /// effective set already cut.
    #[test]
    fn cap_bpf_stays_only_where_map_reads_need_it() {
        let bpf = 1u64 << CAP_BPF;
        let (dropped, t) = drop_on(root(), Some(&|| false));
        let dropped = dropped.unwrap();
        assert!(dropped.bpf_for_maps);
        assert_eq!(dropped.kept, mask(&KEPT) | bpf);
        assert_eq!(t.capsets[0], (mask(&KEPT) | 1 << SETPCAP.0, ALL));
        assert_ne!(t.bounding & bpf, 0);
        let (dropped, t) = drop_on(root(), Some(&|| true));
        assert!(!dropped.unwrap().bpf_for_maps);
        assert_eq!(t.permitted & bpf, 0);
    }

    /// A unit whose bounding set leaves out `CAP_SETPCAP`, or a kernel
    /// that refuses: the error names the first capability, and the
    /// effective and permitted sets are cut all the same.
    #[test]
    fn a_refused_bounding_drop_is_reported_after_the_sets_are_cut() {
        let (dropped, t) = drop_on(
            Thread {
                bounding_errno: Some(libc::EPERM),
                ..root()
            },
            None,
        );
        let Err(CapsError::Bounding { cap, source }) = dropped else {
            panic!("{dropped:?}")
        };
        assert_eq!(cap, "CAP_CHOWN");
        assert_eq!(source.raw_os_error(), Some(libc::EPERM));
        assert_eq!((t.effective, t.permitted), (mask(&KEPT), mask(&KEPT)));
        assert_eq!(t.bounding, ALL);
    }

    /// An unprivileged blippd: no `CAP_SETPCAP`, so the bounding set is
    /// not touched, and nothing fails.
    #[test]
    fn without_setpcap_the_bounding_set_is_left_alone() {
        let some = 1 << 19 | 1 << 13;
        let (dropped, t) = drop_on(
            Thread {
                effective: some,
                permitted: some,
                bounding: ALL,
                ..Thread::default()
            },
            None,
        );
        assert_eq!(dropped.unwrap().kept, 1 << 19);
        assert!(t.dropped.is_empty());
        assert_eq!(t.bounding, ALL);
    }

    #[test]
    fn capget_and_capset_errors_say_which() {
        let (dropped, _) = drop_on(
            Thread {
                capget_errno: Some(libc::EINVAL),
                ..root()
            },
            None,
        );
        assert!(
            matches!(dropped, Err(CapsError::Get(ref e)) if e.raw_os_error() == Some(libc::EINVAL)),
            "{dropped:?}"
        );
        let (dropped, t) = drop_on(
            Thread {
                capset_errno: Some(libc::EPERM),
                ..root()
            },
            None,
        );
        assert!(
            matches!(dropped, Err(CapsError::Set(ref e)) if e.raw_os_error() == Some(libc::EPERM)),
            "{dropped:?}"
        );
        assert_eq!(t.bounding, ALL, "nothing else tried");
    }
}
