//! The floor: a process that only reads the /proc files blippd's default
//! probes read, once a second, and does nothing with them. No agent reading
//! those files can cost less; blippd's goal is to stay within twice this.

use std::fs::File;
use std::io::Read as _;
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

/// Reads `files` every `interval`, on a fixed schedule, until killed.
/// Each read is what blippd's reader does and nothing more: open, read into
/// a reused buffer until end of file, close.
pub fn read_forever(files: &[PathBuf], interval: Duration) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let mut ticks: u32 = 0;
    loop {
        for path in files {
            read_once(path, &mut buf).with_context(|| format!("reading {}", path.display()))?;
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
