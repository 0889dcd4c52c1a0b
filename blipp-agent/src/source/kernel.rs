//! The few system calls probes make themselves, in one place: what kind
//! of file system a directory is, and the monotonic clock the kernel
//! stamps its events with.

use std::path::Path;

/// Whether `dir` is a mounted procfs (not a fixture tree or a copy).
pub fn is_procfs(dir: &Path) -> bool {
    const PROC_SUPER_MAGIC: u64 = 0x9fa0;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain C data; zeroed is valid.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid NUL-terminated path and a writable statfs.
    unsafe {
        // f_type is signed on glibc and unsigned on musl.
        libc::statfs(c.as_ptr(), &raw mut s) == 0
            && u64::try_from(s.f_type).is_ok_and(|t| t == PROC_SUPER_MAGIC)
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock of
/// `bpf_ktime_get_ns`, which the kernel programs stamp events with.
pub fn monotonic_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut t) };
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_is_procfs_and_a_plain_directory_is_not() {
        assert!(is_procfs(Path::new("/proc")));
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_procfs(dir.path()));
        assert!(!is_procfs(Path::new("/no/such/dir")));
    }

    #[test]
    fn the_monotonic_clock_advances() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }
}
