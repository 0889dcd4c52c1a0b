//! Reading kernel text files without allocating on every tick.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::procfs::ParseError;
use crate::limits::KERNEL_FILE_MAX;

/// What a reader starts with: most kernel files fit in a page.
const INITIAL_BUF: usize = 4096;

/// A kernel file that could not be read or did not parse; names the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// open/read failed.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The text did not parse.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: ParseError,
    },
}

/// A file under /proc or /sys read again and again into the same buffer.
#[derive(Debug)]
pub struct KernelFile {
    path: PathBuf,
    /// Grows to the largest read so far and stays that size.
    buf: Vec<u8>,
    /// How much of `buf` the last read filled.
    len: usize,
    /// The file, kept open when it is the kernel's (procfs, sysfs): read
    /// again from offset 0 it is generated afresh, and opening
    /// `/proc/net/snmp` costs more than reading it. Anything else (a test
    /// fixture rewritten by renaming) is opened for every read.
    open: Option<File>,
}

/// The text of a kernel file. Kernel files are ASCII except for names the
/// kernel copies from elsewhere (an interface may be named with any bytes
/// but `/`, `:` and whitespace): those are decoded lossily rather than
/// losing the whole file, and only then does decoding allocate. Valid text
/// is checked by `str::from_utf8`, whose word-at-a-time ASCII path costs a
/// fraction of the lossy decoder's byte-by-byte walk (which was a tenth of
/// blippd's instructions at a 1 s interval).
pub fn decode(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

impl KernelFile {
    /// A reader for `root/rel` (`rel` like `"net/dev"`).
    pub fn new(root: &Path, rel: &str) -> Self {
        Self {
            path: root.join(rel),
            buf: vec![0; INITIAL_BUF],
            len: 0,
            open: None,
        }
    }

    /// The full path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole file (kernel files must be read in one go to be
    /// consistent) into the reused buffer, from offset 0 until end of file:
    /// two `pread`s per read of a kernel file kept open, else open, read,
    /// close. (`read_to_end` would first ask for the file's size with statx
    /// and lseek, and /proc files do not know their size anyway.) A kept
    /// descriptor that fails (a sysfs node that went away) is dropped and
    /// the path opened again, once.
    fn fill(&mut self) -> io::Result<()> {
        if let Some(file) = &self.open {
            match read_all(file, &mut self.buf) {
                Ok(len) => {
                    self.len = len;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
                    self.open = None;
                    return Err(e);
                }
                Err(_) => self.open = None,
            }
        }
        self.len = 0;
        let file = crate::bounded::open_regular(&self.path)?;
        self.len = read_all(&file, &mut self.buf)?;
        if is_kernel_file(&file) {
            self.open = Some(file);
        }
        Ok(())
    }

    fn parse_buf<T>(
        &self,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<T, FileError> {
        parse(&decode(&self.buf[..self.len])).map_err(|source| FileError::Parse {
            path: self.path.clone(),
            source,
        })
    }

    /// Reads the file and runs `parse` on its text.
    pub fn parse<T>(
        &mut self,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<T, FileError> {
        self.fill().map_err(|source| FileError::Read {
            path: self.path.clone(),
            source,
        })?;
        self.parse_buf(parse)
    }

    /// Like [`KernelFile::parse`] for a file that only some hosts have:
    /// `Ok(None)` when it does not exist.
    pub fn parse_optional<T>(
        &mut self,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<Option<T>, FileError> {
        match self.fill() {
            Ok(()) => self.parse_buf(parse).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(FileError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

/// Reads `file` from offset 0 to its end into `buf`, growing it as
/// needed; returns the length read. A seq_file (most of /proc) restarts
/// its output when read at offset 0 and hands it out in pieces of at most
/// its buffer's size, so a short read is not the end: that is a read of 0.
/// A file longer than [`KERNEL_FILE_MAX`] is an error, and the buffer it
/// grew is given back.
fn read_all(file: &File, buf: &mut Vec<u8>) -> io::Result<usize> {
    read_capped(file, buf, KERNEL_FILE_MAX as usize)
}

fn read_capped(file: &File, buf: &mut Vec<u8>, cap: usize) -> io::Result<usize> {
    let mut len = 0;
    loop {
        if len == buf.len() {
            if len > cap {
                buf.truncate(INITIAL_BUF);
                buf.shrink_to_fit();
                return Err(crate::bounded::too_large(cap as u64));
            }
            // One byte past the cap tells a file of exactly `cap` bytes
            // from a longer one.
            buf.resize((buf.len() * 2).min(cap + 1), 0);
        }
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => return Ok(len),
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether `file` lives on procfs or sysfs, whose files are never replaced
/// by another file at the same path.
fn is_kernel_file(file: &File) -> bool {
    let mut fs = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: a valid descriptor and a buffer of the right type, which the
    // call fills when it returns 0.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), fs.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // The type is signed in glibc and unsigned in musl (the VM guests).
    // SAFETY: fstatfs returned 0: the buffer is filled.
    let kind = i128::from(unsafe { fs.assume_init() }.f_type);
    kind == i128::from(libc::PROC_SUPER_MAGIC) || kind == i128::from(libc::SYSFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = KernelFile::new(dir.path(), "loadavg");
        let e = f.parse(crate::source::procfs::loadavg::parse).unwrap_err();
        assert!(e.to_string().contains("loadavg"), "{e}");
        std::fs::write(dir.path().join("loadavg"), "x y z").unwrap();
        let e = f.parse(crate::source::procfs::loadavg::parse).unwrap_err();
        assert!(matches!(e, FileError::Parse { .. }), "{e}");
        std::fs::write(dir.path().join("loadavg"), "1 2 3 1/2 3").unwrap();
        assert_eq!(
            f.parse(crate::source::procfs::loadavg::parse).unwrap().five,
            2.0
        );
        let mut absent = KernelFile::new(dir.path(), "user_beancounters");
        assert_eq!(absent.parse_optional(|t| Ok(t.len())).unwrap(), None);
        std::fs::write(dir.path().join("user_beancounters"), "abc").unwrap();
        assert_eq!(absent.parse_optional(|t| Ok(t.len())).unwrap(), Some(3));
    }

    #[test]
    fn files_larger_than_the_buffer_and_shrinking_files() {
        let dir = tempfile::tempdir().unwrap();
        let big: String = (0..3000).map(|i| format!("{i}\n")).collect();
        std::fs::write(dir.path().join("f"), &big).unwrap();
        let mut f = KernelFile::new(dir.path(), "f");
        assert_eq!(f.parse(|t| Ok(t.to_owned())).unwrap(), big);
        std::fs::write(dir.path().join("f"), "short\n").unwrap();
        assert_eq!(f.parse(|t| Ok(t.to_owned())).unwrap(), "short\n");
    }

    #[test]
    fn names_with_foreign_bytes_survive() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dev"), b"caf\xe9: 1 2\n").unwrap();
        let mut f = KernelFile::new(dir.path(), "dev");
        let text = f.parse(|t| Ok(t.to_owned())).unwrap();
        assert_eq!(text, "caf\u{fffd}: 1 2\n");
    }

    /// A kernel file stays open and is generated afresh at every read:
    /// this thread's `schedstat`, whose CPU time grows as the test spins,
    /// and `/proc/diskstats`, read whole even when it is longer than
    /// one piece of its seq_file.
    #[test]
    fn kernel_files_stay_open_and_are_read_afresh() {
        let mut f = KernelFile::new(Path::new("/proc"), "thread-self/schedstat");
        let ns = |t: &str| -> Result<u64, ParseError> {
            Ok(t.split_whitespace().next().unwrap().parse().unwrap())
        };
        let first = f.parse(ns).unwrap();
        assert!(f.open.is_some(), "a procfs file is kept open");
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {
            std::hint::black_box(spin.elapsed());
        }
        let second = f.parse(ns).unwrap();
        assert!(second > first, "read again: {first} then {second} ns");

        let mut stats = KernelFile::new(Path::new("/proc"), "diskstats");
        stats.buf = vec![0; 16];
        let kept = stats.parse(|t| Ok(t.to_owned())).unwrap();
        let fresh = std::fs::read_to_string("/proc/diskstats").unwrap();
        assert_eq!(
            kept.lines().count(),
            fresh.lines().count(),
            "every line, through a 16-byte start"
        );
        let again = stats.parse(|t| Ok(t.to_owned())).unwrap();
        assert_eq!(again.lines().count(), fresh.lines().count());
    }

    /// A `proc_dir` whose files never end or never answer (issue 16): the
    /// read fails, naming the file and why, and does not hang.
    #[test]
    fn endless_and_blocking_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("loadavg")).unwrap();
        let mut f = KernelFile::new(dir.path(), "loadavg");
        let e = f.parse(|t| Ok(t.len())).unwrap_err().to_string();
        assert!(
            e.contains("loadavg") && e.contains("character device"),
            "{e}"
        );
        let fifo = std::ffi::CString::new(
            dir.path()
                .join("stat")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let mut f = KernelFile::new(dir.path(), "stat");
        let e = f.parse(|t| Ok(t.len())).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");
    }

    /// Past the cap the read fails, says the cap, and gives back the
    /// buffer it grew; exactly the cap is still read.
    #[test]
    fn a_file_over_the_cap_is_refused_and_the_buffer_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![b'x'; 100_000]).unwrap();
        let mut buf = vec![0; 16];
        let file = File::open(&path).unwrap();
        let e = read_capped(&file, &mut buf, 99_999).unwrap_err();
        assert_eq!(e.to_string(), "longer than the limit of 99999 bytes");
        assert!(buf.capacity() <= INITIAL_BUF, "{}", buf.capacity());
        assert_eq!(read_capped(&file, &mut buf, 100_000).unwrap(), 100_000);
    }

    #[test]
    fn fixtures_are_opened_for_every_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "one\n").unwrap();
        let mut f = KernelFile::new(dir.path(), "f");
        assert_eq!(f.parse(|t| Ok(t.to_owned())).unwrap(), "one\n");
        assert!(f.open.is_none(), "a regular file is not kept open");
        // Replaced by renaming, as tests rewrite their fixtures.
        std::fs::write(dir.path().join("g"), "two\n").unwrap();
        std::fs::rename(dir.path().join("g"), dir.path().join("f")).unwrap();
        assert_eq!(f.parse(|t| Ok(t.to_owned())).unwrap(), "two\n");
    }
}
