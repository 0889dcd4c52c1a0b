//! The agent's own cost in the kernel: run count, run time and missed runs
//! of each attached program, from `BPF_OBJ_GET_INFO_BY_FD`, while the
//! kernel's run-time statistics are on (see [`Kernel`](super::Kernel)).

use std::os::fd::{AsFd as _, OwnedFd};

use super::info::{self, Info};

/// Offsets in `struct bpf_prog_info` (UAPI, append-only).
const RUN_TIME_NS: usize = 192;
const RUN_CNT: usize = 200;
const RECURSION_MISSES: usize = 208;
const INFO_LEN: usize = 216;

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
    fd: OwnedFd,
}

impl ProgramHandle {
    pub(super) fn new(name: &'static str, fd: OwnedFd) -> Self {
        Self { name, fd }
    }

    /// The kernel's statistics of this program. Needs no privilege: the
    /// descriptor is enough.
    pub fn stats(&self) -> std::io::Result<ProgramStats> {
        let mut info = Info([0; INFO_LEN]);
        let len = info::get(self.fd.as_fd(), &mut info)?;
        Ok(ProgramStats {
            runs: info.u64_at(RUN_CNT),
            run_time_ns: info.u64_at(RUN_TIME_NS),
            missed: (len >= INFO_LEN).then(|| info.u64_at(RECURSION_MISSES)),
        })
    }
}
