//! Whole-array reads in one system call (`BPF_MAP_LOOKUP_BATCH`, Linux
//! 5.6+), which aya does not offer: a probe that scans an array every
//! collection pays one `bpf` call instead of one per element.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use aya::Pod;

use super::sys::{self, BatchAttr, Call};

/// How many values a per-CPU map element holds: one per possible CPU.
pub fn possible_cpus() -> Result<usize, super::EbpfError> {
    aya::util::nr_cpus().map_err(|(path, source)| super::EbpfError::Cpus { path, source })
}

/// A map's descriptor for batch reads, and whether the kernel takes them:
/// the first refusal (no `BPF_MAP_LOOKUP_BATCH` before Linux 5.6) turns
/// them off, and every read after that says "read element by element".
pub struct BatchReader {
    fd: Option<OwnedFd>,
    works: AtomicBool,
    map: &'static str,
}

impl BatchReader {
    /// Batch reads of array map `name`, through its own descriptor; none
    /// (every read falls back) when it cannot be had.
    pub fn of(name: &'static str, map: &aya::maps::Map) -> Self {
        let fd = match map {
            aya::maps::Map::Array(d) | aya::maps::Map::PerCpuArray(d) => {
                d.fd().as_fd().try_clone_to_owned().ok()
            }
            _ => None,
        };
        Self {
            works: AtomicBool::new(fd.is_some()),
            fd,
            map: name,
        }
    }

    /// [`read_array`] on this map; false when the caller must read the
    /// elements one by one.
    pub fn read<V: Pod>(&self, start: u32, keys: &mut [u32], values: &mut [V]) -> bool {
        self.call(|fd| read_array(fd, start, keys, values))
    }

    /// [`read_percpu_array`] on this map; false when the caller must read
    /// the elements one by one.
    pub fn read_percpu<V: Pod>(
        &self,
        start: u32,
        keys: &mut [u32],
        cpus: usize,
        values: &mut [V],
    ) -> bool {
        self.call(|fd| read_percpu_array(fd, start, keys, cpus, values))
    }

    fn call(&self, read: impl FnOnce(BorrowedFd<'_>) -> io::Result<()>) -> bool {
        let Some(fd) = self
            .fd
            .as_ref()
            .filter(|_| self.works.load(Ordering::Relaxed))
        else {
            return false;
        };
        match read(fd.as_fd()) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(map = self.map, error = %e, "no batch lookups: reading element by element");
                self.works.store(false, Ordering::Relaxed);
                false
            }
        }
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
    // SAFETY: `values` holds one `V` per key.
    unsafe { lookup_batch(fd, start, keys, values.as_mut_ptr().cast()) }
}

/// Fills `values` with elements `start..start + keys.len()` of the per-CPU
/// array map `fd`, each as `cpus` values of type `V` (one per possible
/// CPU, in CPU order); `keys` receives their indexes. `V`'s size must be a
/// multiple of 8, the kernel's stride between CPUs' values.
pub fn read_percpu_array<V: Pod>(
    fd: BorrowedFd<'_>,
    start: u32,
    keys: &mut [u32],
    cpus: usize,
    values: &mut [V],
) -> io::Result<()> {
    if !std::mem::size_of::<V>().is_multiple_of(8)
        || keys.len().checked_mul(cpus) != Some(values.len())
    {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: `values` holds `cpus` values of the kernel's per-CPU stride
    // (`size_of::<V>()`, a multiple of 8) per key.
    unsafe { lookup_batch(fd, start, keys, values.as_mut_ptr().cast()) }
}

/// One `BPF_MAP_LOOKUP_BATCH` of `keys.len()` elements from `start`.
///
/// # Safety
/// `values` must point to room for `keys.len()` values of the map's value
/// size as the kernel copies them out (per-CPU maps: that size rounded up
/// to 8, times the number of possible CPUs).
unsafe fn lookup_batch(
    fd: BorrowedFd<'_>,
    start: u32,
    keys: &mut [u32],
    values: *mut u8,
) -> io::Result<()> {
    let count = u32::try_from(keys.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
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
        values: values as u64,
        count,
        map_fd,
        ..BatchAttr::default()
    };
    // SAFETY: the buffers `attr` points to hold `count` keys, `count`
    // values (the caller's promise) and one key each for `in_batch` and
    // `out_batch`, and outlive the call.
    let ret = unsafe { sys::call(Call::LookupBatch(&mut attr)) };
    // ENOENT: the map ended before `count` elements; `attr.count` says how
    // many were filled.
    if let Err(e) = ret
        && e.raw_os_error() != Some(libc::ENOENT)
    {
        return Err(e);
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

    /// `bpf(cmd, attr, sizeof attr)`, to make and fill real maps.
    ///
    /// # Safety
    /// `attr` must be a valid `bpf_attr` prefix for `cmd`, and every
    /// buffer it points to as large as `cmd` needs and alive.
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

    /// A real map of `entries` elements, made and filled with the raw
    /// system calls: `values(i)` is element `i` as the kernel takes it from
    /// userspace (one value, or one per possible CPU); `None` without the
    /// privilege to make one.
    fn map<V>(map_type: u32, entries: u32, values: impl Fn(u32) -> Vec<V>) -> Option<OwnedFd> {
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
            map_type,
            key_size: 4,
            value_size: u32::try_from(std::mem::size_of::<V>()).unwrap(),
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
            let v = values(key);
            let mut update = Update {
                map_fd: u32::try_from(fd.as_raw_fd()).unwrap(),
                key: std::ptr::from_ref(&key) as u64,
                value: v.as_ptr() as u64,
                ..Update::default()
            };
            // SAFETY: BPF_MAP_UPDATE_ELEM on our map, key and values live.
            let ret = unsafe { sys_bpf(2, &mut update) };
            assert_eq!(ret, 0, "{}", io::Error::last_os_error());
        }
        Some(fd)
    }

    /// A `BPF_MAP_TYPE_ARRAY` of `u32` with `value(i)` at index `i`.
    fn array(entries: u32, value: impl Fn(u32) -> u32) -> Option<OwnedFd> {
        map(2, entries, |i| vec![value(i)])
    }

    fn skipped() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(!root, "root could not make a BPF map");
        eprintln!("SKIPPED: making a BPF map needs root (run the suite as root: cargo xtask test)");
    }

    #[test]
    fn a_per_cpu_array_in_one_call() {
        let cpus = aya::util::nr_cpus().unwrap();
        let value = |i: u32, cpu: usize| u64::from(i) * 1000 + cpu as u64;
        // BPF_MAP_TYPE_PERCPU_ARRAY.
        let Some(fd) = map(6, 10, |i| (0..cpus).map(|c| value(i, c)).collect()) else {
            return skipped();
        };
        let mut keys = [0u32; 4];
        let mut values = vec![0u64; 4 * cpus];
        read_percpu_array(fd.as_fd(), 3, &mut keys, cpus, &mut values).unwrap();
        assert_eq!(keys, [3, 4, 5, 6]);
        for (k, per_cpu) in keys.iter().zip(values.chunks(cpus)) {
            for (cpu, v) in per_cpu.iter().enumerate() {
                assert_eq!(*v, value(*k, cpu), "element {k}, CPU {cpu}");
            }
        }
        // A buffer that does not hold one value per CPU and key is refused.
        let mut short = vec![0u64; 4 * cpus - 1];
        let e = read_percpu_array(fd.as_fd(), 0, &mut keys, cpus, &mut short).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // As is a value type the kernel would not lay out at that stride.
        let mut odd = vec![0u32; 4 * cpus];
        let e = read_percpu_array(fd.as_fd(), 0, &mut keys, cpus, &mut odd).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_whole_array_in_one_call() {
        let Some(fd) = array(32, |i| i * 7 + 1) else {
            return skipped();
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

/// The paths of batch reads that only a refusing, old or odd kernel
/// takes, on a fake kernel: no root needed.
#[cfg(test)]
mod fake_kernel {
    use std::cell::Cell;
    use std::os::fd::AsFd as _;
    use std::rc::Rc;

    use super::*;
    use crate::source::ebpf::sys::fake;

    /// A reader of "map" `/dev/null`: the fake kernel answers for it.
    fn reader() -> BatchReader {
        BatchReader {
            fd: Some(std::fs::File::open("/dev/null").unwrap().into()),
            works: AtomicBool::new(true),
            map: "test",
        }
    }

    /// What a kernel whose map has `len` elements, `value(i)` at index
    /// `i`, answers to a batch: up to `count` elements from the one after
    /// `in_batch`, and ENOENT when it reached the map's end.
    fn answer(
        attr: &mut BatchAttr,
        len: u32,
        value: impl Fn(u32) -> u32,
    ) -> io::Result<libc::c_long> {
        let start = if attr.in_batch == 0 {
            0
        } else {
            // SAFETY: the reader points `in_batch` to a live u32.
            let after = unsafe { *(attr.in_batch as *const u32) };
            after + 1
        };
        let n = attr.count.min(len.saturating_sub(start));
        // SAFETY: the reader's buffers hold `count` keys and values.
        let (keys, values) = unsafe {
            (
                std::slice::from_raw_parts_mut(attr.keys as *mut u32, attr.count as usize),
                std::slice::from_raw_parts_mut(attr.values as *mut u32, attr.count as usize),
            )
        };
        for (i, (k, v)) in (start..start + n).zip(keys.iter_mut().zip(values.iter_mut())) {
            *k = i;
            *v = value(i);
        }
        attr.count = n;
        if start + n >= len {
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        } else {
            Ok(0)
        }
    }

    #[test]
    fn a_batch_reads_from_its_start_and_the_map_ending_on_the_last_key_is_no_error() {
        fake::with(
            |call| match call {
                sys::Call::LookupBatch(attr) => Some(answer(attr, 8, |i| i * 10)),
                _ => None,
            },
            || {
                let fd = std::fs::File::open("/dev/null").unwrap();
                let (mut keys, mut values) = ([0u32; 3], [0u32; 3]);
                read_array(fd.as_fd(), 0, &mut keys, &mut values).unwrap();
                assert_eq!((keys, values), ([0, 1, 2], [0, 10, 20]));
                read_array(fd.as_fd(), 5, &mut keys, &mut values).unwrap();
                assert_eq!((keys, values), ([5, 6, 7], [50, 60, 70]));
            },
        );
    }

    /// ENOENT before `count` elements: a short batch, refused, and the
    /// reader falls back to element by element.
    #[test]
    fn a_partial_batch_is_an_error_and_the_reader_falls_back() {
        fake::with(
            |call| match call {
                sys::Call::LookupBatch(attr) => Some(answer(attr, 8, |i| i)),
                _ => None,
            },
            || {
                let fd = std::fs::File::open("/dev/null").unwrap();
                let (mut keys, mut values) = ([0u32; 5], [0u32; 5]);
                let e = read_array(fd.as_fd(), 6, &mut keys, &mut values).unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
                assert!(e.to_string().contains("2 of 5"), "{e}");
                let r = reader();
                assert!(!r.read(6, &mut keys, &mut values));
                assert!(!r.works.load(Ordering::Relaxed));
            },
        );
    }

    #[test]
    fn keys_out_of_index_order_are_refused() {
        fake::with(
            |call| match call {
                sys::Call::LookupBatch(attr) => {
                    let r = answer(attr, 8, |i| i);
                    // SAFETY: as above; the first two keys change places.
                    unsafe {
                        std::ptr::swap(attr.keys as *mut u32, (attr.keys as *mut u32).add(1))
                    };
                    Some(r)
                }
                _ => None,
            },
            || {
                let fd = std::fs::File::open("/dev/null").unwrap();
                let (mut keys, mut values) = ([0u32; 4], [0u32; 4]);
                let e = read_array(fd.as_fd(), 0, &mut keys, &mut values).unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            },
        );
    }

    /// A kernel without batch lookups (EINVAL before 5.6, ENOSYS without
    /// bpf at all) or one that refuses them (EPERM): the first refusal
    /// turns batch reads off, and the reader does not ask again.
    #[test]
    fn a_refused_batch_turns_batch_reads_off_for_good() {
        for errno in [libc::EINVAL, libc::ENOSYS, libc::EPERM] {
            let calls = Rc::new(Cell::new(0));
            let counted = Rc::clone(&calls);
            fake::with(
                move |call| match call {
                    sys::Call::LookupBatch(_) => {
                        counted.set(counted.get() + 1);
                        fake::errno(errno)
                    }
                    _ => None,
                },
                || {
                    let r = reader();
                    let (mut keys, mut values) = ([0u32; 4], [0u32; 4]);
                    assert!(!r.read(0, &mut keys, &mut values), "errno {errno}");
                    let mut per_cpu = [0u64; 8];
                    assert!(!r.read_percpu(0, &mut keys, 2, &mut per_cpu));
                    assert!(!r.read(0, &mut keys, &mut values));
                },
            );
            assert_eq!(calls.get(), 1, "errno {errno}: asked once");
        }
    }

    #[test]
    fn a_reader_that_works_says_so() {
        fake::with(
            |call| match call {
                sys::Call::LookupBatch(attr) => Some(answer(attr, 4, |i| i + 1)),
                _ => None,
            },
            || {
                let r = reader();
                let (mut keys, mut values) = ([0u32; 4], [0u32; 4]);
                assert!(r.read(0, &mut keys, &mut values));
                assert_eq!(values, [1, 2, 3, 4]);
                assert!(r.works.load(Ordering::Relaxed));
            },
        );
    }
}
