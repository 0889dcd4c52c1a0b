//! What the kernel says a BPF program or map descriptor is
//! (`BPF_OBJ_GET_INFO_BY_FD`): needs only the descriptor.

use std::os::fd::{AsRawFd as _, BorrowedFd};

/// `BPF_OBJ_GET_INFO_BY_FD`.
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// Offsets in `struct bpf_prog_info` and `struct bpf_map_info` (UAPI,
/// append-only).
const ID: usize = 4;
const PROGRAM_NAME: usize = 64;
const MAP_NAME: usize = 24;
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

    fn u32_at(&self, at: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[at..at + 4]);
        u32::from_ne_bytes(b)
    }

    /// The NUL-terminated name at `at`.
    fn name_at(&self, at: usize) -> String {
        let raw = &self.0[at..at + NAME_LEN];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        String::from_utf8_lossy(&raw[..end]).into_owned()
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

/// A program's or map's kernel id and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Its id, system-wide.
    pub id: u32,
    /// Its name as the kernel keeps it (at most 15 bytes).
    pub name: String,
}

/// The identity of the program behind `fd`.
pub fn program(fd: BorrowedFd<'_>) -> std::io::Result<Identity> {
    identity::<{ PROGRAM_NAME + NAME_LEN }>(fd, PROGRAM_NAME)
}

/// The identity of the map behind `fd`.
pub fn map(fd: BorrowedFd<'_>) -> std::io::Result<Identity> {
    identity::<{ MAP_NAME + NAME_LEN }>(fd, MAP_NAME)
}

/// Id and name of the object behind `fd`, whose info structure has its
/// name at `name_at` and needs no more than `N` bytes to reach it.
fn identity<const N: usize>(fd: BorrowedFd<'_>, name_at: usize) -> std::io::Result<Identity> {
    let mut info = Info([0; N]);
    get(fd, &mut info)?;
    Ok(Identity {
        id: info.u32_at(ID),
        name: info.name_at(name_at),
    })
}

/// `name` as the kernel keeps it: cut to 15 bytes.
pub fn kernel_name(name: &str) -> &str {
    let mut end = name.len().min(NAME_LEN - 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}
