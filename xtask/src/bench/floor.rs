//! The floor: a process that only reads the /proc files blippd's default
//! probes read, once a second, and does nothing with them; blippd's goal is
//! to stay within twice this. Two ways: as a simple reader does (open, read
//! to the end, close), and as blippd does (each file kept open and read
//! again from offset 0, which costs about half: opening `/proc/net/*` is
//! dearer than reading it). No agent reading those files the second way
//! can cost less.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

/// The files the default probes (cpu, mem, net, disk) read on every
/// collection, relative to /proc (strace of blippd at a 1 s interval).
pub const FILES: &[&str] = &[
    "stat",
    "loadavg",
    "meminfo",
    "net/dev",
    "net/snmp",
    "diskstats",
];

/// Reads `files` every `interval`, on a fixed schedule, until killed: open,
/// read into a reused buffer until end of file, close; or, with
/// `keep_open`, `pread`s from offset 0 until end of file on descriptors
/// opened once, as blippd reads them.
pub fn read_forever(files: &[PathBuf], interval: Duration, keep_open: bool) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let kept = if keep_open {
        files
            .iter()
            .map(|p| File::open(p).with_context(|| format!("opening {}", p.display())))
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let start = Instant::now();
    let mut ticks: u32 = 0;
    loop {
        for (i, path) in files.iter().enumerate() {
            match kept.get(i) {
                Some(file) => read_again(file, &mut buf),
                None => read_once(path, &mut buf),
            }
            .with_context(|| format!("reading {}", path.display()))?;
        }
        ticks += 1;
        let next = start + interval * ticks;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

fn read_once(path: &PathBuf, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut file = File::open(path)?;
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => return Ok(()),
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn read_again(file: &File, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => return Ok(()),
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
