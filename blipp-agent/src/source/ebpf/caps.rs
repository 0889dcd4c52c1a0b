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

/// Drops [`DROPPED`] from the whole process. Threads share the bounding
/// set but not the other sets, so this must run before the runtime's
/// worker threads exist, or be accepted as per-thread (the agent calls it
/// from the thread that loaded the programs; see the arbiter).
pub fn drop_loading_capabilities() -> std::io::Result<()> {
    for (cap, _) in DROPPED {
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
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and two data words, as version 3 requires.
    if unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    for (cap, _) in DROPPED {
        let (word, bit) = ((cap / 32) as usize, 1u32 << (cap % 32));
        data[word].effective &= !bit;
        data[word].permitted &= !bit;
        data[word].inheritable &= !bit;
    }
    // SAFETY: as above.
    if unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether this thread still has capability `cap` in its effective set.
pub fn has_effective(cap: u32) -> bool {
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: as in drop_loading_capabilities.
    if unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) } != 0 {
        return false;
    }
    data[(cap / 32) as usize].effective & (1 << (cap % 32)) != 0
}
