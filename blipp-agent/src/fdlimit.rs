//! Raising the soft limit of open descriptors to the hard limit at start.
//! blippd holds a descriptor per probe's kernel file kept open, per
//! `data_file`, per command run and per control client: 200 probes with a
//! data file each held 1,049, past the soft limit of 1024 that many shells
//! and service managers start programs with, and 21 probes failed. The
//! hard limit is what the administrator allows; the soft one is only a
//! default for programs that never asked for more.

use std::io;

/// The soft and hard limits after raising the soft one to the hard one.
pub fn raise_to_hard() -> io::Result<(libc::rlim_t, libc::rlim_t)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}
