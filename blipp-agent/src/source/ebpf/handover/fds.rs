//! The process side of a handover: what a descriptor is, which ones an
//! exec keeps, the memfd that carries the manifest, the process's name and
//! peak memory.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};

use super::manifest::Kind;
use crate::source::ebpf::info;
use crate::source::ebpf::sys::{self, Call};

/// The memfd's name (`/proc/self/fd` shows `/memfd:<name> (deleted)`).
const MEMFD_NAME: &str = "blipp-handover";

use crate::limits::HANDOVER_MANIFEST_MAX as MANIFEST_MAX;

/// Where `/proc/self/fd` points for the attachments: a BPF link (BPF
/// tracepoints; classic tracepoints on 5.15+) or a perf event with a
/// program set on it (classic tracepoints before).
const LINK_TARGETS: [&str; 2] = ["anon_inode:bpf_link", "anon_inode:[perf_event]"];

fn last_error(what: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Where `/proc/self/fd/<fd>` points.
fn target(fd: RawFd) -> std::io::Result<String> {
    let t = std::fs::read_link(format!("/proc/self/fd/{fd}"))?;
    Ok(t.to_string_lossy().into_owned())
}

/// `fd` if it is open.
fn open(fd: RawFd) -> std::io::Result<BorrowedFd<'static>> {
    // SAFETY: F_GETFD reads the descriptor's flags, nothing else.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open, and nothing closes it while the
    // single thread of a starting blippd looks at it.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// What descriptor `fd` of this process is; an error when it is not open.
pub fn inspect(fd: RawFd) -> Result<Kind, String> {
    let err = |e: std::io::Error| e.to_string();
    let borrowed = open(fd).map_err(err)?;
    let target = target(fd).map_err(err)?;
    Ok(match target.as_str() {
        "anon_inode:bpf-prog" => Kind::Program(info::program(borrowed).map_err(err)?.name),
        "anon_inode:bpf-map" => Kind::Map(info::map(borrowed).map_err(err)?.name),
        "anon_inode:bpf-stats" => Kind::Stats,
        t if LINK_TARGETS.contains(&t) => Kind::Link,
        _ => Kind::Other(target),
    })
}

/// The attachments among this process's descriptors: the BPF links and
/// perf events that keep the programs attached. aya keeps them in its
/// link objects without a way to borrow their descriptors; nothing else in
/// blippd makes either kind.
pub fn attachments() -> std::io::Result<Vec<RawFd>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // The directory's own descriptor is one of them: it is no link.
        if target(fd).is_ok_and(|t| LINK_TARGETS.contains(&t.as_str())) {
            fds.push(fd);
        }
    }
    fds.sort_unstable();
    Ok(fds)
}

/// Sets or clears `FD_CLOEXEC` on `fd`.
pub fn set_cloexec(fd: RawFd, on: bool) -> std::io::Result<()> {
    let context =
        |e: std::io::Error| std::io::Error::new(e.kind(), format!("descriptor {fd}: {e}"));
    let flags = sys::call_plain(Call::GetFd(fd)).map_err(context)?;
    // The kernel's answer is the descriptor flags, a C int.
    let flags = libc::c_int::try_from(flags)
        .map_err(|_| context(std::io::Error::from(std::io::ErrorKind::InvalidData)))?;
    let flags = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    sys::call_plain(Call::SetFd(fd, flags)).map_err(context)?;
    Ok(())
}

/// A sealed memfd holding `bytes`, which an exec keeps open.
pub fn memfd(bytes: &[u8]) -> std::io::Result<OwnedFd> {
    let name = CString::new(MEMFD_NAME).map_err(std::io::Error::other)?;
    // SAFETY: a valid NUL-terminated name; no MFD_CLOEXEC on purpose.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(last_error("memfd_create"));
    }
    // SAFETY: a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = File::from(fd);
    file.write_all(bytes)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS on our own memfd.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(last_error("sealing the memfd"));
    }
    Ok(file.into())
}

/// The memfd holding a manifest, if the previous image of this process
/// left one open: found by its name, as no other program makes one.
/// Without /proc there is none (the previous image could not have
/// executed `/proc/self/exe`).
pub fn find_memfd() -> std::io::Result<Option<RawFd>> {
    let mut found = None;
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Ok(None);
    };
    for entry in dir {
        let entry = entry?;
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if target(fd).is_ok_and(|t| t.starts_with(&format!("/memfd:{MEMFD_NAME} "))) {
            if let Some(first) = found {
                return Err(std::io::Error::other(format!(
                    "two manifests, descriptors {first} and {fd}"
                )));
            }
            found = Some(fd);
        }
    }
    Ok(found)
}

/// Reads the manifest from the memfd `fd` that [`find_memfd`] found, and
/// closes it. Refuses one that is not sealed against writes.
pub fn read_memfd(fd: RawFd) -> std::io::Result<Vec<u8>> {
    // SAFETY: F_GET_SEALS reads the seals only.
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    if seals < 0 || seals & libc::F_SEAL_WRITE == 0 {
        return Err(std::io::Error::other(format!(
            "descriptor {fd}: the memfd is not sealed against writes"
        )));
    }
    // SAFETY: an open memfd made for this image, which nothing else in
    // this process knows of; the File owns and closes it.
    let mut file = unsafe { File::from_raw_fd(fd) };
    // The writer left the offset at the end.
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    file.take(MANIFEST_MAX).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// `AT_PHDR` in the auxiliary vector: where the kernel mapped the program
/// it executed.
const AT_PHDR: usize = 3;

/// The file (device and inode, as /proc/self/maps shows them) mapped at
/// `address`, from one line of /proc/self/maps.
fn file_at(maps_line: &str, address: usize) -> Option<(&str, u64)> {
    let mut fields = maps_line.split_whitespace();
    let (low, high) = fields.next()?.split_once('-')?;
    let range = usize::from_str_radix(low, 16).ok()?..usize::from_str_radix(high, 16).ok()?;
    if !range.contains(&address) {
        return None;
    }
    // Permissions and offset, then the device and the inode.
    let device = fields.nth(2)?;
    let inode = fields.next()?.parse().ok()?;
    (inode != 0).then_some((device, inode))
}

/// Whether the program the kernel executed (what `/proc/self/exe` runs) is
/// the file this code runs from. It is not when blippd was started through
/// the dynamic loader (`ld.so blippd`) or under a tool that loads it
/// itself: executing `/proc/self/exe` would then start that program with
/// blippd's arguments. The kernel's own auxiliary vector says where it
/// mapped the program (the loader rewrites the one in memory).
pub fn exe_is_this_program() -> std::io::Result<bool> {
    let auxv = std::fs::read("/proc/self/auxv")?;
    let word = size_of::<usize>();
    let phdr = auxv
        .chunks_exact(2 * word)
        .find_map(|pair| {
            let (key, value) = pair.split_at(word);
            let key = usize::from_ne_bytes(key.try_into().ok()?);
            let value = usize::from_ne_bytes(value.try_into().ok()?);
            (key == AT_PHDR).then_some(value)
        })
        .ok_or_else(|| std::io::Error::other("no AT_PHDR in /proc/self/auxv"))?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let here = exe_is_this_program as *const () as usize;
    let file = |address| maps.lines().find_map(|l| file_at(l, address));
    Ok(file(phdr).is_some_and(|f| file(here) == Some(f)))
}

/// This process's name.
pub fn comm() -> std::io::Result<String> {
    let comm = std::fs::read_to_string("/proc/self/comm")?;
    Ok(comm.trim_end_matches('\n').to_owned())
}

/// Names this process `name` (what `ps` and `/proc/PID/comm` show).
pub fn set_comm(name: &str) -> std::io::Result<()> {
    let name = CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of up to 16 bytes
    // (longer ones are cut).
    if unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) } != 0 {
        return Err(last_error("PR_SET_NAME"));
    }
    Ok(())
}

/// The process's peak resident memory so far (`VmHWM`), in kB.
pub fn peak_rss_kb() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_at_an_address() {
        let line = "55d5c8d1f000-55d5c967d000 r-xp 003bf000 fd:01 2883729    /usr/local/bin/blippd";
        assert_eq!(file_at(line, 0x55d5_c8d1_f000), Some(("fd:01", 2_883_729)));
        assert_eq!(file_at(line, 0x55d5_c967_cfff), Some(("fd:01", 2_883_729)));
        assert_eq!(file_at(line, 0x55d5_c967_d000), None, "the end is outside");
        let anon = "7ffd4a1e0000-7ffd4a201000 rw-p 00000000 00:00 0          [stack]";
        assert_eq!(file_at(anon, 0x7ffd_4a1e_0000), None, "no file");
    }

    #[test]
    fn this_test_runs_from_the_program_the_kernel_executed() {
        assert!(exe_is_this_program().unwrap());
    }
}
