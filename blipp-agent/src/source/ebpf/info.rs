//! What the kernel says a BPF program or map descriptor is
//! (`BPF_OBJ_GET_INFO_BY_FD`): needs only the descriptor.

use std::os::fd::{AsRawFd as _, BorrowedFd};

/// `BPF_OBJ_GET_INFO_BY_FD`.
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// `BPF_OBJ_NAME_LEN`: names are cut to 15 bytes and a NUL.
pub const NAME_LEN: usize = 16;

/// An info structure's bytes, aligned as the kernel's `__u64` fields.
#[repr(C, align(8))]
pub struct Info<const N: usize>(pub [u8; N]);

impl<const N: usize> Info<N> {
    /// The `u64` at `at`.
    pub fn u64_at(&self, at: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[at..at + 8]);
        u64::from_ne_bytes(b)
    }
}

/// Fills `info` with what the kernel knows of the object behind `fd`;
/// returns how many bytes it wrote (older kernels know fewer fields).
pub fn get<const N: usize>(fd: BorrowedFd<'_>, info: &mut Info<N>) -> std::io::Result<usize> {
    #[repr(C)]
    struct Attr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut attr = Attr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: N as u32,
        info: info.0.as_mut_ptr() as u64,
    };
    // SAFETY: attr and info are valid for the sizes given; the kernel
    // writes at most info_len bytes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &raw mut attr,
            size_of::<Attr>(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(attr.info_len as usize)
}

/// `name` as the kernel keeps it: cut to 15 bytes.
pub fn kernel_name(name: &str) -> &str {
    let mut end = name.len().min(NAME_LEN - 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}
