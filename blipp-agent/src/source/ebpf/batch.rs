//! Whole-array reads in one system call (`BPF_MAP_LOOKUP_BATCH`, Linux
//! 5.6+), which aya does not offer: a probe that scans an array every
//! collection pays one `bpf` call instead of one per element.

use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd};

use aya::Pod;

/// `BPF_MAP_LOOKUP_BATCH` of `enum bpf_cmd` (include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// `bpf(cmd, attr, sizeof attr)`.
///
/// # Safety
/// `attr` must be a valid `bpf_attr` prefix for `cmd` (the kernel
/// zero-fills the rest), and every buffer it points to must be as large as
/// `cmd` needs and outlive the call.
unsafe fn sys_bpf<A>(cmd: libc::c_long, attr: &mut A) -> libc::c_long {
    // SAFETY: the caller's promise.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            std::mem::size_of::<A>(),
        )
    }
}

/// Fills `values` with elements `start..start + values.len()` of the
/// array map `fd`, whose value type is `V` and which has that many
/// elements; `keys` receives their indexes.
pub fn read_array<V: Pod>(
    fd: BorrowedFd<'_>,
    start: u32,
    keys: &mut [u32],
    values: &mut [V],
) -> io::Result<()> {
    if keys.len() != values.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let count = u32::try_from(values.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let map_fd = u32::try_from(fd.as_raw_fd()).map_err(|_| io::ErrorKind::InvalidInput)?;
    // A batch resumes after the key it is given (none: from index 0).
    let after: u32 = start.wrapping_sub(1);
    // The kernel writes where the next batch would resume here.
    let mut next: u32 = 0;
    let mut attr = BatchAttr {
        in_batch: if start == 0 {
            0
        } else {
            std::ptr::from_ref(&after) as u64
        },
        out_batch: std::ptr::from_mut(&mut next) as u64,
        keys: keys.as_mut_ptr() as u64,
        values: values.as_mut_ptr() as u64,
        count,
        map_fd,
        ..BatchAttr::default()
    };
    // SAFETY: `attr` is the `batch` prefix of `bpf_attr`; the buffers it
    // points to hold `count` keys, `count` values of the map's value size
    // (`V`, checked by the caller's map type) and one key each for
    // `in_batch` and `out_batch`, and outlive the call.
    let ret = unsafe { sys_bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) };
    // ENOENT: the map ended before `count` elements; `attr.count` says how
    // many were filled.
    if ret < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOENT) {
            return Err(e);
        }
    }
    if attr.count != count {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("batch lookup returned {} of {count} elements", attr.count),
        ));
    }
    // An array's elements come in index order, so callers may index
    // `values` by position; say so loudly if a kernel ever did otherwise.
    if !keys.iter().zip(start..).all(|(k, i)| *k == i) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "batch lookup returned keys out of index order",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd as _, FromRawFd as _, OwnedFd};

    use super::*;

    /// A real `BPF_MAP_TYPE_ARRAY` of `u32` with `value(i)` at index `i`,
    /// made and filled with the raw system calls; `None` without the
    /// privilege to make one.
    fn array(entries: u32, value: impl Fn(u32) -> u32) -> Option<OwnedFd> {
        #[repr(C)]
        #[derive(Default)]
        struct Create {
            map_type: u32,
            key_size: u32,
            value_size: u32,
            max_entries: u32,
            map_flags: u32,
        }
        #[repr(C)]
        #[derive(Default)]
        struct Update {
            map_fd: u32,
            pad: u32,
            key: u64,
            value: u64,
            flags: u64,
        }
        let mut create = Create {
            map_type: 2,
            key_size: 4,
            value_size: 4,
            max_entries: entries,
            ..Create::default()
        };
        // SAFETY: BPF_MAP_CREATE with a valid attribute prefix.
        let fd = unsafe { sys_bpf(0, &mut create) };
        if fd < 0 {
            return None;
        }
        // SAFETY: the kernel just returned this descriptor to us.
        let fd = unsafe { OwnedFd::from_raw_fd(i32::try_from(fd).unwrap()) };
        for key in 0..entries {
            let v = value(key);
            let mut update = Update {
                map_fd: u32::try_from(fd.as_raw_fd()).unwrap(),
                key: std::ptr::from_ref(&key) as u64,
                value: std::ptr::from_ref(&v) as u64,
                ..Update::default()
            };
            // SAFETY: BPF_MAP_UPDATE_ELEM on our map, key and value live.
            let ret = unsafe { sys_bpf(2, &mut update) };
            assert_eq!(ret, 0, "{}", io::Error::last_os_error());
        }
        Some(fd)
    }

    #[test]
    fn a_whole_array_in_one_call() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let Some(fd) = array(32, |i| i * 7 + 1) else {
            assert!(!root, "root could not make a BPF array map");
            eprintln!(
                "SKIPPED: making a BPF map needs root (run the suite as root: cargo xtask test)"
            );
            return;
        };
        let mut keys = [0u32; 32];
        let mut values = [0u32; 32];
        read_array(fd.as_fd(), 0, &mut keys, &mut values).unwrap();
        for (i, (k, v)) in (0u32..).zip(keys.iter().zip(values.iter())) {
            assert_eq!((*k, *v), (i, i * 7 + 1));
        }
        // The first elements only, and runs from the middle.
        let (mut keys, mut values) = ([0u32; 5], [0u32; 5]);
        read_array(fd.as_fd(), 0, &mut keys, &mut values).unwrap();
        assert_eq!(values, [1, 8, 15, 22, 29]);
        read_array(fd.as_fd(), 12, &mut keys, &mut values).unwrap();
        assert_eq!(keys, [12, 13, 14, 15, 16]);
        assert_eq!(values, [85, 92, 99, 106, 113]);
        read_array(fd.as_fd(), 27, &mut keys, &mut values).unwrap();
        assert_eq!(keys, [27, 28, 29, 30, 31]);
        // More than the map holds is an error, not a short read.
        let (mut keys, mut values) = ([0u32; 33], [0u32; 33]);
        let e = read_array(fd.as_fd(), 0, &mut keys, &mut values).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        let (mut keys, mut values) = ([0u32; 5], [0u32; 5]);
        let e = read_array(fd.as_fd(), 28, &mut keys, &mut values).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        // Mismatched buffers are refused before any call.
        let e = read_array(fd.as_fd(), 0, &mut [0u32; 3], &mut [0u32; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
