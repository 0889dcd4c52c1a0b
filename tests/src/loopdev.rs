//! Loop devices made by a test, on a file in a temporary directory,
//! detached and removed on drop.

use std::fs::OpenOptions;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// A loop device backed by a sparse file.
pub struct LoopDevice {
    /// `/dev/loopN`.
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl LoopDevice {
    /// Creates a `size_mb` MiB backing file and attaches it.
    pub fn new(size_mb: u64) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let backing = dir.path().join("disk.img");
        std::fs::File::create(&backing)?.set_len(size_mb * 1024 * 1024)?;
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&backing)
            .output()
            .context("running losetup")?;
        if !out.status.success() {
            bail!("losetup failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let path = PathBuf::from(String::from_utf8(out.stdout)?.trim());
        Ok(Self { path, _dir: dir })
    }

    /// The kernel's name for it (`loop3`), as in /proc/diskstats.
    pub fn name(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }

    /// Its (major, minor) device numbers, from /sys/block/<name>/dev.
    pub fn numbers(&self) -> Result<(u32, u32)> {
        let text = std::fs::read_to_string(format!("/sys/block/{}/dev", self.name()))?;
        let (major, minor) = text
            .trim()
            .split_once(':')
            .context("major:minor in /sys/block/<dev>/dev")?;
        Ok((major.parse()?, minor.parse()?))
    }

    /// Writes `count` blocks of `block` bytes with O_DIRECT from offset 0:
    /// `count` write requests of known size reach the block layer.
    pub fn write_direct(&self, block: usize, count: usize) -> Result<()> {
        write_direct(&self.path, block, count)
    }

    /// Reads `count` blocks of `block` bytes with O_DIRECT from offset 0.
    pub fn read_direct(&self, block: usize, count: usize) -> Result<()> {
        read_direct(&self.path, block, count)
    }
}

/// Writes `count` blocks of `block` bytes to `path` with O_DIRECT from
/// offset 0, then syncs.
pub fn write_direct(path: &Path, block: usize, count: usize) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let buf = AlignedBuf::new(block, 0xa5);
    for _ in 0..count {
        f.write_all(buf.as_slice())?;
    }
    f.sync_all()?;
    Ok(())
}

/// Reads `count` blocks of `block` bytes from `path` with O_DIRECT from
/// offset 0.
pub fn read_direct(path: &Path, block: usize, count: usize) -> Result<()> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let mut buf = AlignedBuf::new(block, 0);
    for _ in 0..count {
        f.read_exact(buf.as_mut_slice())?;
    }
    Ok(())
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
        // A detached device stays in /proc/diskstats with the I/O the test
        // did, and the agents of later tests would report it as a disk (40
        // of them made a UNIS test's first report need more requests).
        if let Some(n) = self
            .name()
            .strip_prefix("loop")
            .and_then(|n| n.parse().ok())
        {
            remove(n);
        }
    }
}

/// `LOOP_CTL_REMOVE` (linux/loop.h).
const LOOP_CTL_REMOVE: libc::c_ulong = 0x4C81;

/// Removes loop device `n`, waiting a little while it is still busy
/// (a detach completes at its last close). Failures are left alone: the
/// device then stays, as a detached one always did.
fn remove(n: u32) {
    let Ok(control) = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
    else {
        return;
    };
    for _ in 0..50 {
        // SAFETY: plain ioctl on an open descriptor with an integer argument.
        let rc = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&control),
                LOOP_CTL_REMOVE as _,
                libc::c_ulong::from(n),
            )
        };
        if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EBUSY) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A page-aligned buffer, as O_DIRECT requires.
struct AlignedBuf {
    ptr: *mut u8,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize, fill: u8) -> Self {
        let layout = std::alloc::Layout::from_size_align(len, 4096).expect("valid layout");
        // SAFETY: non-zero size (callers pass a block size).
        let ptr = unsafe { std::alloc::alloc(layout) };
        assert!(!ptr.is_null(), "allocation failed");
        // SAFETY: ptr is valid for len bytes.
        unsafe { std::ptr::write_bytes(ptr, fill, len) };
        Self { ptr, len }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: allocated and initialised for len bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: allocated and initialised for len bytes, uniquely owned.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, 4096).expect("valid layout");
        // SAFETY: allocated in new() with this layout.
        unsafe { std::alloc::dealloc(self.ptr, layout) };
    }
}

/// The diskstats line of `name` under `proc_dir`.
pub fn diskstats_of(proc_dir: &Path, name: &str) -> Result<Vec<u64>> {
    let text = std::fs::read_to_string(proc_dir.join("diskstats"))?;
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.get(2) == Some(&name) {
            return t[3..].iter().map(|v| Ok(v.parse()?)).collect();
        }
    }
    bail!("{name} not in diskstats")
}
