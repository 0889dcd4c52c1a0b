//! The disk benchmark's third contender: the classic design of a block I/O
//! latency tracer (`classic.bt`), run by bpftrace as an operator would.
//! Where blipp counts in per-CPU arrays, this design does a hash insert on
//! every issue and a lookup and delete on every completion; that request-
//! keyed hash is the cost the comparison is about.
//!
//! The disk benchmark starts it around a load ([`Classic::start`]), reads
//! its programs' kernel cost by its pid ([`super::bpf_stats::programs_of`])
//! and stops it ([`Classic::stop`]), which checks that it measured.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::bpf_stats;
use super::daemon::Daemon;

/// Debian package of bpftrace.
pub const PACKAGES: &[&str] = &["bpftrace"];

/// The script.
pub const SCRIPT: &str = include_str!("classic.bt");

/// A running bpftrace with the classic script.
pub struct Classic {
    daemon: Daemon,
    output: PathBuf,
}

impl Classic {
    /// Starts bpftrace in `dir` and waits until both programs are attached.
    pub fn start(dir: &Path) -> Result<Self> {
        let (mut daemon, output) = run_script(dir, "classic.bt", SCRIPT, 2)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while bpf_stats::programs_of(daemon.pid())?.len() != 2 {
            daemon.check_running()?;
            if Instant::now() > deadline {
                bail!("bpftrace did not load its 2 programs within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self { daemon, output })
    }

    /// bpftrace's pid, whose descriptors hold the programs.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Stops bpftrace (it prints its maps on SIGTERM) and returns how many
    /// latencies its histogram counted; none is an error, since then it
    /// traced nothing and its cost would mean nothing.
    pub fn stop(self) -> Result<u64> {
        let status = self.daemon.stop()?;
        let text = fs::read_to_string(&self.output)?;
        match histogram_total(&text) {
            Some(n) if n > 0 => Ok(n),
            _ => bail!("bpftrace ({status}) printed no latency histogram:\n{text}"),
        }
    }
}

/// Writes `script` to `dir/name`, starts bpftrace on it with its output
/// in `dir/bpftrace.out` (errors in `bpftrace.err`), and waits up to 60 s
/// until it says it attached `probes` probes. Every bench part that runs a
/// classic design starts it this way.
pub fn run_script(
    dir: &Path,
    name: &str,
    script: &str,
    probes: usize,
) -> Result<(Daemon, PathBuf)> {
    fs::create_dir_all(dir)?;
    let path = dir.join(name);
    fs::write(&path, script)?;
    let output = dir.join("bpftrace.out");
    let errors = dir.join("bpftrace.err");
    let mut cmd = Command::new("bpftrace");
    cmd.arg(&path)
        .stdout(fs::File::create(&output)?)
        .stderr(fs::File::create(&errors)?);
    let mut daemon = Daemon::spawn("bpftrace", &mut cmd)?;
    let attached = format!("Attaching {probes} probes");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fs::read_to_string(&output).is_ok_and(|o| o.contains(&attached)) {
        daemon
            .check_running()
            .with_context(|| fs::read_to_string(&errors).unwrap_or_default())?;
        if Instant::now() > deadline {
            bail!("bpftrace did not attach its {probes} probes within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((daemon, output))
}

/// The number of values in bpftrace's `@usecs` histogram: the sum of the
/// counts of its bucket lines, `[lo, hi) count |@@@|` or, for a bucket of
/// one value, `[v] count |@@@|`.
pub fn histogram_total(text: &str) -> Option<u64> {
    let start = text.find("@usecs:")?;
    let mut total = 0;
    for line in text[start..].lines().skip(1) {
        let Some(rest) = line.strip_prefix('[') else {
            break;
        };
        let after = &rest[rest.find([')', ']'])? + 1..];
        let count = after.split('|').next()?.trim();
        total += count.parse::<u64>().ok()?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_of_a_run() {
        let text = include_str!("fixtures/bpftrace-classic.txt");
        assert_eq!(histogram_total(text), Some(291_383));
        assert_eq!(histogram_total("Attaching 2 probes...\n"), None);
        assert_eq!(histogram_total("@usecs: \n[1, 2)  x |@|\n"), None);
    }
}
