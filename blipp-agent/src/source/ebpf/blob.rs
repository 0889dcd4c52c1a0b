//! The kernel's BTF as bytes: mapped where the kernel allows it, read
//! otherwise.
//!
//! Since 6.16 `/sys/kernel/btf/vmlinux` can be mapped read-only: the
//! kernel maps its own pages, all at once, so start-up neither copies the
//! 5 MB nor faults in a buffer for them. Older kernels refuse the mapping
//! and the file is read.

use std::io;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::ptr::NonNull;

/// Bytes of a file.
pub enum Blob {
    /// A private read-only mapping of the whole file.
    Mapped(Mapping),
    /// The file's bytes, read.
    Read(Vec<u8>),
}

/// A private read-only mapping, unmapped on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value alone.
unsafe impl Send for Mapping {}
// SAFETY: as above: shared access only ever reads.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` are the mapping `mmap` returned, unmapped
        // only here.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

impl std::ops::Deref for Blob {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            // SAFETY: a live read-only mapping of `len` bytes.
            Blob::Mapped(m) => unsafe { std::slice::from_raw_parts(m.ptr.as_ptr(), m.len) },
            Blob::Read(v) => v,
        }
    }
}

impl Blob {
    /// The regular file `path`, at most `cap` bytes: mapped when the
    /// kernel allows it, else read. Only for files that do not change
    /// while mapped (a truncated mapping faults): the kernel's own.
    pub fn of_kernel_file(path: &Path, cap: u64) -> io::Result<Self> {
        let file = crate::bounded::open_regular(path)?;
        let len = file.metadata()?.len();
        if len > cap {
            return Err(crate::bounded::too_large(cap));
        }
        if len > 0 {
            // SAFETY: a new private read-only mapping of a descriptor
            // this function holds; the result is checked before use.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len as usize,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE,
                    file.as_raw_fd(),
                    0,
                )
            };
            if ptr != libc::MAP_FAILED
                && let Some(ptr) = NonNull::new(ptr.cast::<u8>())
            {
                return Ok(Blob::Mapped(Mapping {
                    ptr,
                    len: len as usize,
                }));
            }
        }
        crate::bounded::read_to_cap(file, cap).map(Blob::Read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_can_be_mapped_reads_the_same_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let blob = Blob::of_kernel_file(&path, 1 << 20).unwrap();
        assert!(matches!(blob, Blob::Mapped(_)));
        assert_eq!(&blob[..], &bytes[..]);
        assert!(Blob::of_kernel_file(&path, 100).is_err());
    }

    #[test]
    fn a_file_that_cannot_be_mapped_is_read() {
        // /proc files have no length and cannot be mapped.
        let blob = Blob::of_kernel_file(Path::new("/proc/self/stat"), 1 << 20).unwrap();
        assert!(matches!(blob, Blob::Read(_)));
        assert!(blob.starts_with(std::process::id().to_string().as_bytes()));
    }
}
