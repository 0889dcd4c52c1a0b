//! The agent's own cost in the kernel: run count, run time and missed runs
//! of each attached program, from `BPF_OBJ_GET_INFO_BY_FD`, while the
//! kernel's run-time statistics are on (see [`Kernel`](super::Kernel)).

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::programs::ProgramFd;

/// Offsets in `struct bpf_prog_info` (UAPI, append-only).
const RUN_TIME_NS: usize = 192;
const RUN_CNT: usize = 200;
const RECURSION_MISSES: usize = 208;
const INFO_LEN: usize = 216;

/// `BPF_OBJ_GET_INFO_BY_FD`.
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// What the kernel counted for one program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramStats {
    /// Runs.
    pub runs: u64,
    /// Nanoseconds spent running.
    pub run_time_ns: u64,
    /// Runs skipped because the program was already running on that CPU
    /// (5.12+; `None` before).
    pub missed: Option<u64>,
}

/// An attached program, as the probe that attached it keeps it.
pub struct ProgramHandle {
    /// The program's name.
    pub name: &'static str,
    fd: ProgramFd,
}

impl ProgramHandle {
    pub(super) fn new(name: &'static str, fd: ProgramFd) -> Self {
        Self { name, fd }
    }

    /// The kernel's statistics of this program. Needs no privilege: the
    /// descriptor is enough.
    pub fn stats(&self) -> std::io::Result<ProgramStats> {
        #[repr(C, align(8))]
        struct Info([u8; INFO_LEN]);
        #[repr(C)]
        struct Attr {
            bpf_fd: u32,
            info_len: u32,
            info: u64,
        }
        let mut info = Info([0; INFO_LEN]);
        let mut attr = Attr {
            bpf_fd: self.fd.as_fd().as_raw_fd() as u32,
            info_len: INFO_LEN as u32,
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
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&info.0[at..at + 8]);
            u64::from_ne_bytes(b)
        };
        Ok(ProgramStats {
            runs: word(RUN_CNT),
            run_time_ns: word(RUN_TIME_NS),
            missed: (attr.info_len as usize >= INFO_LEN).then(|| word(RECURSION_MISSES)),
        })
    }
}
