//! Following a log file as `tail -F` does: each call reads the complete
//! lines appended since the last one, from where it left off.
//!
//! - The file is read from its beginning when first opened (the original
//!   BLiPP's netlogger probe did so), and a file that does not exist yet
//!   is opened when it appears.
//! - A line is handed out only once its newline was written; the
//!   unterminated rest waits for the next call.
//! - Truncation (the file is shorter than the position read to): reading
//!   starts again at its beginning.
//! - Rotation (the path now names another file, by device and inode): the
//!   old file is read to its end first — including a last line without a
//!   newline, which will never be completed — then the new one from its
//!   beginning. A path that disappeared keeps the old file open (a writer
//!   may still append to it) until a new file appears.
//! - Each call reads at most `limit` bytes, so a large backlog is spread
//!   over several collections; a line longer than [`MAX_LINE`] is dropped
//!   (counted in [`Follower::dropped`]).

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

/// The longest line kept, bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// Why the file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {call}: {source}", path.display())]
pub struct TailError {
    /// The file.
    pub path: PathBuf,
    /// What failed.
    pub call: &'static str,
    /// Why.
    #[source]
    pub source: io::Error,
}

struct Open {
    file: File,
    id: (u64, u64),
    pos: u64,
}

/// A followed file.
pub struct Follower {
    path: PathBuf,
    open: Option<Open>,
    partial: Vec<u8>,
    skipping: bool,
    chunk: Vec<u8>,
    dropped: u64,
}

impl Follower {
    /// Follows `path` (which need not exist yet).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            open: None,
            partial: Vec::new(),
            skipping: false,
            chunk: vec![0; 64 * 1024],
            dropped: 0,
        }
    }

    /// Lines dropped for being longer than [`MAX_LINE`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn error(&self, call: &'static str) -> impl FnOnce(io::Error) -> TailError + '_ {
        move |source| TailError {
            path: self.path.clone(),
            call,
            source,
        }
    }

    /// Opens the path if it exists: `None` when it does not.
    fn open_path(&self) -> Result<Option<Open>, TailError> {
        // Regular files only: a FIFO or a device never ends or never
        // answers, and rotation by inode means nothing for them.
        match crate::bounded::open_regular(&self.path) {
            Ok(file) => {
                let meta = file.metadata().map_err(self.error("fstat"))?;
                Ok(Some(Open {
                    file,
                    id: (meta.dev(), meta.ino()),
                    pos: 0,
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error("open")(e)),
        }
    }

    /// Hands each complete new line (without its newline, and without a
    /// `\r` before it) to `each`; reads at most `limit` bytes. Returns the
    /// number of bytes read.
    pub fn read(&mut self, limit: usize, each: &mut dyn FnMut(&str)) -> Result<usize, TailError> {
        if self.open.is_none() {
            self.open = self.open_path()?;
        }
        let mut total = 0;
        while total < limit {
            let Some(open) = &self.open else { break };
            let size = open.file.metadata().map_err(self.error("fstat"))?.len();
            if let Some(open) = self.open.as_mut().filter(|o| size < o.pos) {
                open.pos = 0;
                self.partial.clear();
                self.skipping = false;
            }
            let n = self.read_chunk(limit - total, each)?;
            total += n;
            if n > 0 {
                continue;
            }
            // At the end of the file: has the path moved on to another one?
            let now = std::fs::metadata(&self.path);
            let Some(open) = &self.open else { break };
            match now {
                Ok(meta) if (meta.dev(), meta.ino()) != open.id => {
                    // Rotated: the old file's unterminated last line is
                    // as complete as it will ever be.
                    self.finish_partial(each);
                    self.open = self.open_path()?;
                }
                _ => break,
            }
        }
        Ok(total)
    }

    /// Reads one chunk at the position and hands out its complete lines.
    fn read_chunk(&mut self, room: usize, each: &mut dyn FnMut(&str)) -> Result<usize, TailError> {
        let Some(open) = &mut self.open else {
            return Ok(0);
        };
        let want = room.min(self.chunk.len());
        let n = loop {
            match open.file.read_at(&mut self.chunk[..want], open.pos) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(TailError {
                        path: self.path.clone(),
                        call: "read",
                        source: e,
                    });
                }
            }
        };
        open.pos += n as u64;
        let mut rest = &self.chunk[..n];
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(nl);
            rest = &after[1..];
            if self.skipping {
                self.skipping = false;
                continue;
            }
            if self.partial.len() + line.len() > MAX_LINE {
                self.dropped += 1;
            } else if self.partial.is_empty() {
                emit(line, each);
            } else {
                self.partial.extend_from_slice(line);
                emit(&self.partial, each);
            }
            self.partial.clear();
        }
        if !self.skipping {
            self.partial.extend_from_slice(rest);
            if self.partial.len() > MAX_LINE {
                self.partial.clear();
                self.skipping = true;
                self.dropped += 1;
            }
        }
        Ok(n)
    }

    fn finish_partial(&mut self, each: &mut dyn FnMut(&str)) {
        if !self.partial.is_empty() {
            emit(&self.partial, each);
            self.partial.clear();
        }
        self.skipping = false;
    }
}

fn emit(line: &[u8], each: &mut dyn FnMut(&str)) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    each(&String::from_utf8_lossy(line));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn lines(f: &mut Follower, limit: usize) -> Vec<String> {
        let mut got = Vec::new();
        f.read(limit, &mut |l| got.push(l.to_owned())).unwrap();
        got
    }

    fn append(path: &Path, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn appends_partial_lines_truncation_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let mut f = Follower::new(&path);
        assert!(lines(&mut f, 1 << 20).is_empty(), "no file yet");
        append(&path, "one\ntwo\r\nthr");
        assert_eq!(lines(&mut f, 1 << 20), ["one", "two"]);
        assert!(
            lines(&mut f, 1 << 20).is_empty(),
            "nothing new, the partial line waits"
        );
        append(&path, "ee\nfour\n");
        assert_eq!(lines(&mut f, 1 << 20), ["three", "four"]);
        // Truncated and rewritten shorter: read again from the start.
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(lines(&mut f, 1 << 20), ["new"]);
        // Rotated: the old file gets one more line (and an unterminated
        // one) after the rename, then the writer moves to a new file.
        append(&path, "five\n");
        let old = dir.path().join("app.log.1");
        std::fs::rename(&path, &old).unwrap();
        append(&old, "six\nseven");
        assert_eq!(
            lines(&mut f, 1 << 20),
            ["five", "six"],
            "the path is gone: the old file is still followed"
        );
        append(&path, "eight\n");
        assert_eq!(lines(&mut f, 1 << 20), ["seven", "eight"]);
        append(&old, "late\n");
        append(&path, "nine\n");
        assert_eq!(
            lines(&mut f, 1 << 20),
            ["nine"],
            "the old file is left behind"
        );
    }

    #[test]
    fn limit_spreads_a_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        let text: String = (0..1000).map(|i| format!("line {i:04}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let mut f = Follower::new(&path);
        let mut all = Vec::new();
        let mut calls = 0;
        loop {
            let got = lines(&mut f, 1000);
            if got.is_empty() {
                break;
            }
            all.extend(got);
            calls += 1;
        }
        assert_eq!(calls, 10, "10 bytes a line, 1000 bytes a call");
        assert_eq!(all.len(), 1000);
        assert_eq!(all[999], "line 0999");
    }

    #[test]
    fn overlong_lines_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.log");
        // One line just over the limit, split across two reads, and one
        // far over it.
        let long = "x".repeat(MAX_LINE + 10);
        let longer = "y".repeat(3 * MAX_LINE);
        std::fs::write(&path, format!("a\n{long}\nb\n{longer}\nc\n")).unwrap();
        let mut f = Follower::new(&path);
        let got = lines(&mut f, 1 << 20);
        let lengths: Vec<usize> = got.iter().map(String::len).collect();
        assert_eq!(lengths, [1, 1, 1], "only a, b and c");
        assert_eq!(got.concat(), "abc");
        assert_eq!(f.dropped(), 2);
    }
}
