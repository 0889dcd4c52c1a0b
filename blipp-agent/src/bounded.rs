//! Opening and reading files that a configuration names, without trusting
//! what they are or how long they are: a path may lead to `/dev/zero`, a
//! FIFO no one writes to, or a file that grows forever. Every read of a
//! configured path goes through here, with a cap from [`crate::limits`].

use std::fs::File;
use std::io::{self, Read as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Opens `path` for reading if it is a regular file (after symbolic
/// links). The open itself does not wait: a FIFO is opened non-blocking,
/// and refused by its type before anything reads from it. The descriptor
/// returned is blocking again, as /proc files expect.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file but {}", kind_name(kind)),
        ));
    }
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL and F_SETFL on a descriptor this function owns change
    // its status flags only.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(file)
}

fn kind_name(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "of an unknown type"
    }
}

/// The error for a file longer than `cap` bytes; says the cap.
pub fn too_large(cap: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("longer than the limit of {}", size(cap)),
    )
}

/// `bytes` for people: `4 MiB`, `64 KiB`, `100 bytes`.
pub fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// Reads `file` to its end, failing once it holds more than `cap` bytes
/// (one byte past the cap is read to tell a file of exactly `cap` bytes
/// from a longer one).
pub fn read_to_cap(file: File, cap: u64) -> io::Result<Vec<u8>> {
    // Sized by the file's length where it has one, so that a large file
    // (the kernel's BTF, 5 MB) is not copied again each time the buffer
    // doubles; a length past the cap, or none (/proc files say 0), does
    // not size it.
    let known = file.metadata().map_or(0, |m| m.len());
    let mut bytes = Vec::with_capacity(if known <= cap { known as usize + 1 } else { 0 });
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_large(cap));
    }
    Ok(bytes)
}

/// The whole of the regular file `path`, at most `cap` bytes.
pub fn read(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    read_to_cap(open_regular(path)?, cap)
}

/// [`read`] as UTF-8 text.
pub fn read_to_string(path: &Path, cap: u64) -> io::Result<String> {
    String::from_utf8(read(path, cap)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("not UTF-8 text ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn files_that_never_end_are_refused_by_type_without_reading() {
        let e = read(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert_eq!(e.to_string(), "not a regular file but a character device");
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("loadavg");
        std::os::unix::fs::symlink("/dev/urandom", &link).unwrap();
        assert!(read(&link, 100).is_err());
        assert!(
            read(dir.path(), 100)
                .unwrap_err()
                .to_string()
                .contains("directory")
        );
    }

    /// Opened non-blocking: a FIFO with no writer is refused at once.
    #[test]
    fn a_fifo_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let start = Instant::now();
        let e = read(&fifo, 100).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn the_cap_is_exact_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, vec![b'x'; 1024]).unwrap();
        assert_eq!(read(&f, 1024).unwrap().len(), 1024);
        let e = read(&f, 1023).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "longer than the limit of 1023 bytes");
        assert_eq!(size(4 << 20), "4 MiB");
        assert_eq!(size(64 << 10), "64 KiB");
    }

    /// The descriptor is blocking again, as procfs readers expect.
    #[test]
    fn the_descriptor_blocks_again() {
        let file = open_regular(Path::new("/proc/self/stat")).unwrap();
        // SAFETY: reads the status flags of an open descriptor.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags & libc::O_NONBLOCK, 0);
    }
}
