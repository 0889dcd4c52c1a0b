//! The guest's initramfs: a `newc` cpio archive (the format the kernel
//! unpacks into its root file system), written directly so that no host
//! tool is needed and the contents are exactly what the test put there.

use std::io::Write;

/// An archive being written.
pub struct Cpio<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;

impl<W: Write> Cpio<W> {
    /// Starts an archive.
    pub fn new(out: W) -> Self {
        Self {
            out,
            next_ino: 1,
            written: 0,
        }
    }

    /// A directory (parents must come first).
    pub fn dir(&mut self, path: &str) -> std::io::Result<()> {
        self.entry(path, S_IFDIR | 0o755, 2, (0, 0), &[])
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
        self.entry(path, S_IFREG | mode, 1, (0, 0), data)
    }

    /// A character device node, e.g. `/dev/console` (the kernel opens it
    /// for init's standard streams before anything is mounted).
    pub fn char_device(&mut self, path: &str, major: u32, minor: u32) -> std::io::Result<()> {
        self.entry(path, S_IFCHR | 0o600, 1, (major, minor), &[])
    }

    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> std::io::Result<()> {
        let size = u32::try_from(data.len())
            .map_err(|_| std::io::Error::other(format!("{path}: too large for cpio")))?;
        let name_size =
            u32::try_from(path.len() + 1).map_err(|_| std::io::Error::other("path too long"))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let fields = [
            ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, name_size, 0,
        ];
        let mut header = String::from("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.put(header.as_bytes())?;
        self.put(path.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> std::io::Result<()> {
        let rest = (4 - self.written % 4) % 4;
        self.put(&[0; 3][..rest as usize])
    }

    /// Writes the trailer and returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back (name, mode, data) of every entry, following the format.
    fn entries(mut buf: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut offset = 0usize;
        loop {
            assert_eq!(&buf[..6], b"070701", "magic at {offset}");
            let field = |i: usize| {
                let s = std::str::from_utf8(&buf[6 + 8 * i..14 + 8 * i]).unwrap();
                u32::from_str_radix(s, 16).unwrap() as usize
            };
            let (mode, size, name_size) = (field(1), field(6), field(11));
            let name_end = 110 + name_size;
            let name = std::str::from_utf8(&buf[110..name_end - 1])
                .unwrap()
                .to_owned();
            let data_start = name_end.next_multiple_of(4);
            let data = buf[data_start..data_start + size].to_vec();
            let next = (data_start + size).next_multiple_of(4);
            offset += next;
            buf = &buf[next..];
            if name == "TRAILER!!!" {
                assert!(buf.is_empty());
                return out;
            }
            out.push((name, mode as u32, data));
        }
    }

    #[test]
    fn round_trip() {
        let mut c = Cpio::new(Vec::new());
        c.dir("dev").unwrap();
        c.char_device("dev/console", 5, 1).unwrap();
        c.file("init", 0o755, b"#!x").unwrap();
        c.file("a/b", 0o644, b"hello").unwrap();
        let buf = c.finish().unwrap();
        assert_eq!(buf.len() % 4, 0);
        let e = entries(&buf);
        assert_eq!(e.len(), 4);
        assert_eq!(e[0], ("dev".to_owned(), S_IFDIR | 0o755, vec![]));
        assert_eq!(e[1].1, S_IFCHR | 0o600);
        assert_eq!(e[2], ("init".to_owned(), S_IFREG | 0o755, b"#!x".to_vec()));
        assert_eq!(e[3].2, b"hello");
    }
}
