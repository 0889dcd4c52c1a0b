//! Facts about the host the agent runs on.

use std::ffi::CStr;

/// The kernel's view of this machine (`uname(2)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uname {
    /// `nodename`: the host name.
    pub nodename: String,
    /// `release`: the kernel version, e.g. `6.1.0-18-amd64`.
    pub release: String,
    /// `machine`: the architecture, e.g. `x86_64`.
    pub machine: String,
}

/// Calls `uname(2)`.
pub fn uname() -> std::io::Result<Uname> {
    // SAFETY: utsname is plain C data; zeroed is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let field = |f: &[libc::c_char]| {
        // SAFETY: the kernel NUL-terminates every utsname field.
        unsafe { CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    Ok(Uname {
        nodename: field(&u.nodename),
        release: field(&u.release),
        machine: field(&u.machine),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn uname_matches_proc() {
        let u = super::uname().unwrap();
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(u.release, release.trim());
        assert!(!u.nodename.is_empty());
    }
}
