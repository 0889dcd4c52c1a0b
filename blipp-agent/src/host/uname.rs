//! The machine's names: `uname(2)` and the canonical (fully qualified)
//! name the resolver gives the host name.

use std::ffi::{CStr, CString};

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

/// The canonical name of `host` as `getaddrinfo(AI_CANONNAME)` resolves it
/// (/etc/hosts, DNS, as nsswitch.conf says), or `None` when it does not
/// resolve. May block on DNS: call it at start-up, not per tick.
pub fn canonical_name(host: &str) -> Option<String> {
    let c_host = CString::new(host).ok()?;
    // SAFETY: addrinfo is plain C data; zeroed is the documented way to
    // prepare hints.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_DGRAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated host, valid hints, `res` receives a list
    // that is freed below.
    let rc = unsafe { libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 || res.is_null() {
        return None;
    }
    // SAFETY: getaddrinfo succeeded, so `res` points at a valid addrinfo;
    // with AI_CANONNAME its first entry's ai_canonname is NULL or a
    // NUL-terminated string.
    let name = unsafe {
        let canon = (*res).ai_canonname;
        (!canon.is_null()).then(|| CStr::from_ptr(canon).to_string_lossy().into_owned())
    };
    // SAFETY: `res` came from getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(res) };
    name.filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uname_matches_proc() {
        let u = uname().unwrap();
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(u.release, release.trim());
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(u.nodename, hostname.trim());
        assert_eq!(u.machine, std::env::consts::ARCH);
    }

    /// The resolver's own command line client prints the canonical name on
    /// the first line of `getent ahosts NAME`, third column.
    #[test]
    fn canonical_name_matches_getent() {
        let host = uname().unwrap().nodename;
        let out = std::process::Command::new("getent")
            .args(["ahosts", &host])
            .output()
            .expect("getent runs");
        let text = String::from_utf8(out.stdout).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(2))
            .map(str::to_owned);
        assert_eq!(canonical_name(&host), expected);
        assert_eq!(canonical_name("localhost").as_deref(), Some("localhost"));
        assert_eq!(canonical_name("a\0b"), None);
    }
}
