//! Reading kernel text files without allocating on every tick.

use std::borrow::Cow;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use super::procfs::ParseError;

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
            buf: vec![0; 4096],
            len: 0,
        }
    }

    /// The full path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole file (kernel files must be read in one go to be
    /// consistent) into the reused buffer: open, read until end of file,
    /// close. (`read_to_end` would first ask for the file's size with statx
    /// and lseek, two more system calls per file and collection, and /proc
    /// files do not know their size anyway.)
    fn fill(&mut self) -> io::Result<()> {
        self.len = 0;
        let mut file = std::fs::File::open(&self.path)?;
        loop {
            if self.len == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            match file.read(&mut self.buf[self.len..]) {
                Ok(0) => return Ok(()),
                Ok(n) => self.len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
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
}
