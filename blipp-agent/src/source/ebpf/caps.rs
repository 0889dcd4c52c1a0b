//! Dropping the capabilities that only loading eBPF programs needed.
//!
//! Once the programs are attached, reading their maps, ring buffers and
//! statistics needs only the file descriptors the agent already holds. What
//! could load new kernel code or administer the system is then given up for
//! the rest of the process's life: `CAP_BPF`, `CAP_PERFMON`,
//! `CAP_SYS_ADMIN`, `CAP_SYS_MODULE`, `CAP_SYS_RAWIO`, from the effective,
//! permitted, inheritable and bounding sets. Kept: what reading other
//! processes' /proc files needs (`CAP_SYS_PTRACE`, `CAP_DAC_READ_SEARCH`),
//! and the rest of root's file and network rights that other probes and
//! sinks use. A probe restarted later (a configuration change) cannot load
//! programs any more and falls back to /proc, saying so.
//!
//! Kernels before 5.11 or so check `CAP_BPF` (or `CAP_SYS_ADMIN`) on every
//! `bpf()` call while unprivileged BPF is disabled (Debian's default), map
//! reads included. So the drop is tried on the effective set first, a map
//! is read, and where that fails `CAP_BPF` is kept.

/// The capabilities dropped, by number (linux/capability.h).
pub const DROPPED: [(u32, &str); 5] = [
    (21, "CAP_SYS_ADMIN"),
    (16, "CAP_SYS_MODULE"),
    (17, "CAP_SYS_RAWIO"),
    (38, "CAP_PERFMON"),
    (39, "CAP_BPF"),
];

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

fn capget() -> std::io::Result<(Header, [Data; 2])> {
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and two data words, as version 3 requires.
    if unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((header, data))
}

fn capset(mut header: Header, data: &[Data; 2]) -> std::io::Result<()> {
    // SAFETY: as in capget.
    if unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
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
/// `maps_readable` (a map read) fails without it. Capabilities other than
/// the bounding set are per thread: call this before any other thread
/// exists.
pub fn drop_loading_capabilities(maps_readable: impl Fn() -> bool) -> std::io::Result<Dropped> {
    let all: Vec<u32> = DROPPED.iter().map(|(c, _)| *c).collect();
    let (header, data) = capget()?;
    capset(
        Header {
            version: header.version,
            pid: 0,
        },
        &without(data, &all, true),
    )?;
    let keep_bpf = !maps_readable();
    let drop: Vec<u32> = all
        .iter()
        .copied()
        .filter(|c| !(keep_bpf && *c == CAP_BPF))
        .collect();
    capset(
        Header {
            version: header.version,
            pid: 0,
        },
        &without(data, &drop, false),
    )?;
    drop_bounding(&drop)?;
    Ok(if keep_bpf {
        Dropped::AllButBpf
    } else {
        Dropped::All
    })
}

/// Removes `caps` from the bounding set (process-wide).
fn drop_bounding(caps: &[u32]) -> std::io::Result<()> {
    for &cap in caps {
        // SAFETY: prctl with integer arguments. EINVAL means the kernel
        // does not know the capability (older than CAP_BPF): nothing to
        // drop.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
    }
    Ok(())
}
