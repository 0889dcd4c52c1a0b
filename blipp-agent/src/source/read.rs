//! Reading kernel text files without allocating on every tick.

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
    buf: String,
}

impl KernelFile {
    /// A reader for `root/rel` (`rel` like `"net/dev"`).
    pub fn new(root: &Path, rel: &str) -> Self {
        Self {
            path: root.join(rel),
            buf: String::with_capacity(4096),
        }
    }

    /// The full path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole file (kernel files must be read in one go to be
    /// consistent) and returns its text; the buffer is reused.
    pub fn read(&mut self) -> Result<&str, FileError> {
        self.buf.clear();
        let result =
            std::fs::File::open(&self.path).and_then(|mut f| f.read_to_string(&mut self.buf));
        match result {
            Ok(_) => Ok(&self.buf),
            Err(source) => Err(FileError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Reads the file and runs `parse` on its text.
    pub fn parse<T>(
        &mut self,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<T, FileError> {
        self.read()?;
        parse(&self.buf).map_err(|source| FileError::Parse {
            path: self.path.clone(),
            source,
        })
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
    }
}
