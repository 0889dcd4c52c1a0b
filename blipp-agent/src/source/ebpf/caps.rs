//! Dropping the capabilities that only loading eBPF programs needed.
//!
//! Once the programs are attached, reading their maps, ring buffers and
//! statistics needs only the file descriptors the agent already holds. What
//! could load new kernel code or administer the system is then given up for
//! the rest of the process's life: `CAP_BPF`, `CAP_PERFMON`,
//! `CAP_SYS_ADMIN`, `CAP_SYS_MODULE`, `CAP_SYS_RAWIO`, from the effective,
//! permitted, inheritable and bounding sets; then `CAP_SETPCAP`, which
//! dropping from the bounding set needs and nothing after it does. Kept:
//! what reading other processes' /proc files needs (`CAP_SYS_PTRACE`,
//! `CAP_DAC_READ_SEARCH`), and the rest of root's file and network rights
//! that other probes and sinks use. A probe restarted later (a
//! configuration change) cannot load programs any more and falls back to
//! /proc, saying so.
//!
//! Kernels before 5.11 or so check `CAP_BPF` (or `CAP_SYS_ADMIN`) on every
//! `bpf()` call while unprivileged BPF is disabled (Debian's default), map
//! reads included. So the drop is tried on the effective set first, a map
//! is read, and where that fails `CAP_BPF` is kept.

/// The capabilities only loading needed, by number (linux/capability.h).
pub const DROPPED: [(u32, &str); 5] = [
    (21, "CAP_SYS_ADMIN"),
    (16, "CAP_SYS_MODULE"),
    (17, "CAP_SYS_RAWIO"),
    (38, "CAP_PERFMON"),
    (39, "CAP_BPF"),
];

/// Dropped last: removing a capability from the bounding set needs it in
/// the effective set, itself included, and nothing afterwards does.
pub const SETPCAP: (u32, &str) = (8, "CAP_SETPCAP");

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

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// What [`drop_loading_capabilities`] dropped.
#[derive(Debug, PartialEq, Eq)]
pub enum Dropped {
    /// All of [`DROPPED`].
    All,
    /// All but `CAP_BPF`, which this kernel wants for reading maps.
    AllButBpf,
}

const CAP_BPF: u32 = 39;

fn capget() -> Result<(Header, [Data; 2]), CapsError> {
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and two data words, as version 3 requires.
    if unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) } != 0 {
        return Err(CapsError::Get(std::io::Error::last_os_error()));
    }
    Ok((header, data))
}

/// Sets this thread's effective, permitted and inheritable sets.
fn capset(version: u32, data: &[Data; 2]) -> Result<(), CapsError> {
    let mut header = Header { version, pid: 0 };
    // SAFETY: as in capget.
    if unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) } != 0 {
        return Err(CapsError::Set(std::io::Error::last_os_error()));
    }
    Ok(())
}

fn without(mut data: [Data; 2], caps: &[u32], effective_only: bool) -> [Data; 2] {
    for cap in caps {
        let (word, bit) = ((cap / 32) as usize, 1u32 << (cap % 32));
        data[word].effective &= !bit;
        if !effective_only {
            data[word].permitted &= !bit;
            data[word].inheritable &= !bit;
        }
    }
    data
}

/// Drops [`DROPPED`] from the process for good, or all but `CAP_BPF` when
/// `maps_readable` (a map read) fails without it, and then [`SETPCAP`].
/// Capabilities other than the bounding set are per thread: call this
/// before any other thread exists.
///
/// The order matters: the loading capabilities leave this thread's sets
/// first, so that they are unusable even where the bounding set cannot be
/// changed; then the bounding set, while `CAP_SETPCAP` is still effective;
/// then `CAP_SETPCAP` leaves this thread's sets too, whether the bounding
/// set could be changed or not.
pub fn drop_loading_capabilities(maps_readable: impl Fn() -> bool) -> Result<Dropped, CapsError> {
    let all: Vec<u32> = DROPPED.iter().map(|(c, _)| *c).collect();
    let (header, data) = capget()?;
    capset(header.version, &without(data, &all, true))?;
    let keep_bpf = !maps_readable();
    let drop: Vec<(u32, &'static str)> = DROPPED
        .iter()
        .copied()
        .filter(|(c, _)| !(keep_bpf && *c == CAP_BPF))
        .collect();
    let mut numbers: Vec<u32> = drop.iter().map(|(c, _)| *c).collect();
    capset(header.version, &without(data, &numbers, false))?;
    let bounding = drop_bounding(drop.iter().chain([&SETPCAP]));
    numbers.push(SETPCAP.0);
    let last = capset(header.version, &without(data, &numbers, false));
    bounding?;
    last?;
    Ok(if keep_bpf {
        Dropped::AllButBpf
    } else {
        Dropped::All
    })
}

/// Removes `caps` from the bounding set (process-wide), in order.
fn drop_bounding<'a>(caps: impl Iterator<Item = &'a (u32, &'static str)>) -> Result<(), CapsError> {
    for &(cap, name) in caps {
        // SAFETY: prctl with integer arguments. EINVAL means the kernel
        // does not know the capability (older than CAP_BPF): nothing to
        // drop.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if rc != 0 {
            let source = std::io::Error::last_os_error();
            if source.raw_os_error() != Some(libc::EINVAL) {
                return Err(CapsError::Bounding { cap: name, source });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> [Data; 2] {
        let all = Data {
            effective: u32::MAX,
            permitted: u32::MAX,
            inheritable: u32::MAX,
        };
        [all, all]
    }

    #[test]
    fn without_clears_each_capability_in_its_word() {
        let d = without(full(), &[SETPCAP.0, CAP_BPF], false);
        for set in [d[0].effective, d[0].permitted, d[0].inheritable] {
            assert_eq!(set, !(1 << 8), "CAP_SETPCAP is bit 8 of the low word");
        }
        for set in [d[1].effective, d[1].permitted, d[1].inheritable] {
            assert_eq!(set, !(1 << 7), "CAP_BPF is bit 7 of the high word");
        }
    }

    #[test]
    fn effective_only_keeps_permitted_and_inheritable() {
        let d = without(full(), &[SETPCAP.0], true);
        assert_eq!(d[0].effective, !(1 << 8));
        assert_eq!((d[0].permitted, d[0].inheritable), (u32::MAX, u32::MAX));
    }

    #[test]
    fn setpcap_is_not_among_the_loading_capabilities() {
        // It must stay effective until the bounding set is done: the
        // effective-only trial drop of DROPPED would take it away early.
        assert!(DROPPED.iter().all(|(c, _)| *c != SETPCAP.0));
    }
}
