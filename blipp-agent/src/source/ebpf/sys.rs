//! The raw system calls of the eBPF side that aya does not make for it:
//! batch map reads, the capability sets and the descriptor flags of the
//! handover. They all go through [`call`], so that unit tests can put a
//! fake kernel in its place ([`fake::with`]) and reach the paths a real
//! kernel takes only without root, on an old kernel or on a bad day
//! (EPERM, ENOSYS, EINVAL, a short batch).

use std::io;
use std::os::fd::RawFd;

/// `BPF_MAP_LOOKUP_BATCH` of `enum bpf_cmd` (include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct BatchAttr {
    pub in_batch: u64,
    pub out_batch: u64,
    pub keys: u64,
    pub values: u64,
    pub count: u32,
    pub map_fd: u32,
    pub elem_flags: u64,
    pub flags: u64,
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
#[derive(Debug)]
pub struct CapHeader {
    pub version: u32,
    pub pid: i32,
}

/// `struct __user_cap_data_struct`: one 32-bit word of each set.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapData {
    pub effective: u32,
    pub permitted: u32,
    pub inheritable: u32,
}

/// One system call and its arguments.
#[derive(Debug)]
pub enum Call<'a> {
    /// `bpf(BPF_MAP_LOOKUP_BATCH, attr)`; the kernel updates `attr.count`.
    LookupBatch(&'a mut BatchAttr),
    /// `capget(header, data)`.
    Capget(&'a mut CapHeader, &'a mut [CapData; 2]),
    /// `capset(header, data)`.
    Capset(&'a mut CapHeader, &'a [CapData; 2]),
    /// `prctl(PR_CAPBSET_DROP, cap)`.
    CapbsetDrop(u32),
    /// `fcntl(fd, F_GETFD)`.
    GetFd(RawFd),
    /// `fcntl(fd, F_SETFD, flags)`.
    SetFd(RawFd, libc::c_int),
}

/// Makes `call`: its non-negative return value, or the error the kernel
/// gave.
///
/// # Safety
/// A [`Call::LookupBatch`]'s `attr` must point to buffers as large as its
/// `count` needs (keys, values of the map's value size, per-CPU maps that
/// times the possible CPUs rounded up to 8 each), alive for the call.
pub unsafe fn call(call: Call<'_>) -> io::Result<libc::c_long> {
    #[cfg(test)]
    let mut call = call;
    #[cfg(test)]
    if let Some(result) = fake::answer(&mut call) {
        return result;
    }
    // SAFETY: the caller's promise for the batch; the other calls take
    // integers, or structures that the references keep alive and sized as
    // the kernel reads and writes them (header and two data words for
    // capability version 3).
    let ret = unsafe {
        match call {
            Call::LookupBatch(attr) => libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                std::ptr::from_mut(attr),
                std::mem::size_of::<BatchAttr>(),
            ),
            Call::Capget(header, data) => libc::syscall(
                libc::SYS_capget,
                std::ptr::from_mut(header),
                data.as_mut_ptr(),
            ),
            Call::Capset(header, data) => {
                libc::syscall(libc::SYS_capset, std::ptr::from_mut(header), data.as_ptr())
            }
            Call::CapbsetDrop(cap) => {
                libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0).into()
            }
            Call::GetFd(fd) => libc::fcntl(fd, libc::F_GETFD).into(),
            Call::SetFd(fd, flags) => libc::fcntl(fd, libc::F_SETFD, flags).into(),
        }
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// [`call`] of the calls that point to nothing but their arguments.
pub fn call_plain(c: Call<'_>) -> io::Result<libc::c_long> {
    debug_assert!(!matches!(c, Call::LookupBatch(_)), "a batch has a contract");
    // SAFETY: not a batch (above): nothing to promise.
    unsafe { call(c) }
}

/// A fake kernel for unit tests, per thread.
#[cfg(test)]
pub mod fake {
    use std::cell::RefCell;
    use std::io;

    use super::Call;

    type Fake = Box<dyn FnMut(&mut Call<'_>) -> Option<io::Result<libc::c_long>>>;

    thread_local! {
        static FAKE: RefCell<Option<Fake>> = const { RefCell::new(None) };
    }

    /// The fake's answer to `call`, when a fake is in place and answers it.
    pub(super) fn answer(call: &mut Call<'_>) -> Option<io::Result<libc::c_long>> {
        FAKE.with(|f| f.borrow_mut().as_mut().and_then(|f| f(call)))
    }

    /// Runs `body` with `fake` answering this thread's system calls; a
    /// call it answers `None` to goes to the kernel.
    pub fn with<T>(
        fake: impl FnMut(&mut Call<'_>) -> Option<io::Result<libc::c_long>> + 'static,
        body: impl FnOnce() -> T,
    ) -> T {
        struct Restore(Option<Fake>);
        impl Drop for Restore {
            fn drop(&mut self) {
                FAKE.with(|f| *f.borrow_mut() = self.0.take());
            }
        }
        let previous = FAKE.with(|f| f.borrow_mut().replace(Box::new(fake)));
        let _restore = Restore(previous);
        body()
    }

    /// The error `errno` as a fake's answer.
    pub fn errno(errno: i32) -> Option<io::Result<libc::c_long>> {
        Some(Err(io::Error::from_raw_os_error(errno)))
    }
}
