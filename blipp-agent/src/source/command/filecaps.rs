//! The file capabilities of the program a run executes, which decide its
//! bounding set.
//!
//! A command's bounding set is empty, except for a program that carries
//! file capabilities with the effective bit (Debian's `ping`,
//! `cap_net_raw=ep`): the kernel refuses to execute such a file (EPERM,
//! `bprm_caps_from_vfs_caps`) unless every capability of its permitted
//! set is in the bounding set, even though under `no_new_privs` the run
//! gains none of them. For that program alone the bounding set keeps
//! exactly the file's permitted set.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

/// `VFS_CAP_REVISION_MASK` of linux/capability.h.
const REVISION_MASK: u32 = 0xFF00_0000;
const REVISION_1: u32 = 0x0100_0000;
const REVISION_2: u32 = 0x0200_0000;
const REVISION_3: u32 = 0x0300_0000;
/// `VFS_CAP_FLAGS_EFFECTIVE`.
const FLAG_EFFECTIVE: u32 = 0x0000_0001;

/// What a `security.capability` attribute grants at exec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileCaps {
    /// The file's permitted set.
    pub permitted: u64,
    /// The file's inheritable set.
    pub inheritable: u64,
    /// The effective bit: the gained permitted set becomes effective.
    pub effective: bool,
    /// The owner of the user namespace the attribute was written for
    /// (revision 3); the kernel applies it only where that is root, here 0.
    pub root_id: u32,
}

fn word(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses a `security.capability` value (`struct vfs_cap_data` or
/// `vfs_ns_cap_data`, little-endian): `magic_etc`, then permitted and
/// inheritable words, one pair for revision 1, two (low, high) for 2 and
/// 3, and a root id for 3. `None` for anything else, which the kernel
/// refuses as well.
pub fn parse(value: &[u8]) -> Option<FileCaps> {
    let magic = word(value, 0)?;
    let (words, size) = match magic & REVISION_MASK {
        REVISION_1 => (1, 12),
        REVISION_2 => (2, 20),
        REVISION_3 => (2, 24),
        _ => return None,
    };
    if value.len() != size {
        return None;
    }
    let (mut permitted, mut inheritable) = (0u64, 0u64);
    for i in 0..words {
        permitted |= u64::from(word(value, 4 + 8 * i)?) << (32 * i);
        inheritable |= u64::from(word(value, 8 + 8 * i)?) << (32 * i);
    }
    let root_id = if size == 24 { word(value, 20)? } else { 0 };
    Some(FileCaps {
        permitted,
        inheritable,
        effective: magic & FLAG_EFFECTIVE != 0,
        root_id,
    })
}

/// The capabilities a run of `program` keeps in its bounding set: the
/// file's permitted set when the kernel would refuse to execute it
/// without them (effective bit, attribute for this namespace), none
/// otherwise.
pub fn bounding_for(caps: Option<FileCaps>) -> u64 {
    match caps {
        Some(c) if c.effective && c.root_id == 0 => c.permitted,
        _ => 0,
    }
}

/// Reads the `security.capability` attribute of `path`; `None` when it
/// has none (or cannot be read: exec then reports the error).
pub fn read(path: &Path) -> Option<FileCaps> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    // SAFETY: NUL-terminated path and name; the buffer's length is passed
    // with it.
    let n = unsafe {
        libc::getxattr(
            c_path.as_ptr(),
            c"security.capability".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    parse(&buf[..n])
}

/// Where `program` is found in `path_var` (a `PATH` value), as exec would
/// find it: a name with a `/` is used as it is; otherwise the first
/// directory holding an executable regular file of that name. `None` when
/// there is none (exec then reports it).
pub fn resolve(program: &str, path_var: &OsStr) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    if program.is_empty() {
        return None;
    }
    std::env::split_paths(path_var)
        .map(|dir| dir.join(program))
        .find(|p| {
            let regular = std::fs::metadata(p).is_ok_and(|m| m.is_file());
            let executable = CString::new(p.as_os_str().as_bytes())
                // SAFETY: a NUL-terminated path.
                .is_ok_and(|c| unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0);
            regular && executable
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn debian_pings_attribute() {
        // getfattr -n security.capability /usr/bin/ping: revision 2 with
        // the effective flag, cap_net_raw (13) permitted.
        let caps = parse(&bytes(&[0x0200_0001, 1 << 13, 0, 0, 0])).unwrap();
        assert_eq!(
            caps,
            FileCaps {
                permitted: 1 << 13,
                inheritable: 0,
                effective: true,
                root_id: 0
            }
        );
        assert_eq!(bounding_for(Some(caps)), 1 << 13);
    }

    #[test]
    fn high_words_and_revision_3() {
        // cap_bpf (39) and cap_net_admin (12), inheritable cap_perfmon (38),
        // written for the initial namespace and for a container's root.
        let v3 = |root| bytes(&[0x0300_0001, 1 << 12, 0, 1 << 7, 1 << 6, root]);
        let caps = parse(&v3(0)).unwrap();
        assert_eq!(caps.permitted, 1 << 39 | 1 << 12);
        assert_eq!(caps.inheritable, 1 << 38);
        assert_eq!(bounding_for(Some(caps)), 1 << 39 | 1 << 12);
        let theirs = parse(&v3(100_000)).unwrap();
        assert_eq!(theirs.root_id, 100_000);
        assert_eq!(bounding_for(Some(theirs)), 0, "not applied here");
    }

    #[test]
    fn without_the_effective_bit_nothing_is_kept() {
        let caps = parse(&bytes(&[0x0200_0000, 1 << 13, 0, 0, 0])).unwrap();
        assert!(!caps.effective);
        assert_eq!(bounding_for(Some(caps)), 0);
        assert_eq!(bounding_for(None), 0);
    }

    #[test]
    fn revision_1_has_one_word() {
        let caps = parse(&bytes(&[0x0100_0001, 1 << 13, 1])).unwrap();
        assert_eq!((caps.permitted, caps.inheritable), (1 << 13, 1));
    }

    #[test]
    fn malformed_values_are_refused() {
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[1, 0, 0]), None);
        assert_eq!(parse(&bytes(&[0x0200_0001, 1, 0, 0])), None, "short");
        assert_eq!(parse(&bytes(&[0x0200_0001, 1, 0, 0, 0, 0])), None, "long");
        assert_eq!(parse(&bytes(&[0x0400_0001, 1, 0, 0, 0])), None, "revision");
    }

    #[test]
    fn programs_are_found_as_exec_finds_them() {
        let path = OsStr::new("/nonexistent:/usr/bin:/bin");
        assert_eq!(resolve("cat", path), Some(PathBuf::from("/usr/bin/cat")));
        assert_eq!(resolve("./x", path), Some(PathBuf::from("./x")));
        assert_eq!(resolve("blipp-no-such-program", path), None);
        assert_eq!(resolve("", path), None);
        assert_eq!(read(Path::new("/usr/bin/cat")), None);
    }
}
