//! The UNIS/MS test server (`blipp-unis-server`, which answers as the real
//! one and validates every body with its schemas) as the benchmarks drive
//! it: over its stdin and stdout.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::daemon::Daemon;
use crate::sh;

/// Builds the release test server and returns its path.
pub fn build_server() -> Result<PathBuf> {
    sh::run(sh::cargo().args([
        "build",
        "--release",
        "-p",
        "blipp-tests",
        "--bin",
        "blipp-unis-server",
    ]))?;
    Ok(sh::target_dir()?.join("release/blipp-unis-server"))
}

/// The test server, driven over its stdin and stdout.
pub struct Server {
    daemon: Daemon,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub url: String,
}

impl Server {
    /// Starts it; `events_delay` makes each `POST /events` take that long.
    pub fn start(bin: &Path, events_delay: Option<Duration>) -> Result<Self> {
        let mut cmd = Command::new(bin);
        if let Some(d) = events_delay {
            cmd.arg("--events-delay").arg(d.as_secs_f64().to_string());
        }
        let mut daemon = Daemon::spawn(
            "blipp-unis-server",
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        )?;
        let (Some(stdin), Some(stdout), _) = daemon.pipes() else {
            bail!("blipp-unis-server has no pipes");
        };
        let mut stdout = BufReader::new(stdout);
        let mut url = String::new();
        stdout
            .read_line(&mut url)
            .context("reading blipp-unis-server's URL")?;
        let url = url.trim().to_owned();
        if !url.starts_with("http") {
            bail!("blipp-unis-server printed {url:?} instead of its URL");
        }
        Ok(Self {
            daemon,
            stdin,
            stdout,
            url,
        })
    }

    /// (UNIS, MS, own) requests answered so far: from clients to UNIS and
    /// to the MS, and the server's own fetches of `metadata_URL`.
    pub fn requests(&mut self) -> Result<(u64, u64, u64)> {
        let (v, line) = self.ask("requests")?;
        match (v["unis"].as_u64(), v["ms"].as_u64(), v["own"].as_u64()) {
            (Some(u), Some(m), Some(o)) => Ok((u, m, o)),
            _ => bail!("blipp-unis-server answered {line:?}"),
        }
    }

    /// Requests to the MS's `/events` (collection lookups and creations)
    /// answered so far.
    pub fn events_requests(&mut self) -> Result<u64> {
        let (v, line) = self.ask("requests")?;
        v["events"]
            .as_u64()
            .with_context(|| format!("blipp-unis-server answered {line:?}"))
    }

    /// (metadata records, MS collections) so far.
    pub fn collections(&mut self) -> Result<(u64, u64)> {
        let (v, line) = self.ask("collections")?;
        match (v["metadata"].as_u64(), v["collections"].as_u64()) {
            (Some(m), Some(c)) => Ok((m, c)),
            _ => bail!("blipp-unis-server answered {line:?}"),
        }
    }

    /// When (µs since the epoch) each accepted `POST /data` carrying data
    /// of an event type containing `text` arrived.
    pub fn arrivals(&mut self, text: &str) -> Result<Vec<u64>> {
        let (v, line) = self.ask(&format!("arrivals {text}"))?;
        v["at"]
            .as_array()
            .and_then(|a| a.iter().map(Value::as_u64).collect())
            .with_context(|| format!("blipp-unis-server answered {line:?}"))
    }

    fn ask(&mut self, command: &str) -> Result<(Value, String)> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let v = serde_json::from_str(&line)
            .with_context(|| format!("blipp-unis-server answered {line:?}"))?;
        Ok((v, line))
    }

    pub fn stop(self) -> Result<()> {
        drop(self.stdin);
        self.daemon.stop()?;
        Ok(())
    }
}
