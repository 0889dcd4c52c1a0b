//! Log output: stderr (coloured only on a terminal) or a size-rotated file.
//! Samples own stdout, so logs never go there.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

/// The original's `-d` levels plus the usual ones. `CONSOLE` was the
/// original's default, between INFO and WARN; here it is INFO.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Diagnostics.
    Debug,
    /// The original's default.
    Console,
    /// Start-up, probes started, fallbacks.
    Info,
    /// Problems the agent works around.
    Warn,
    /// Failures.
    Error,
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Console | LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// A log file that is renamed to `.1` (and older ones shifted up to
/// `.{keep}`) when it reaches `max_bytes`, as the original's
/// RotatingFileHandler did (500 kB, 5 files).
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: File,
    written: u64,
}

impl RotatingFile {
    /// Opens (appends to) `path`.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            max_bytes,
            keep,
            file,
            written,
        })
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        for n in (1..self.keep).rev() {
            let from = self.numbered(n);
            if from.exists() {
                std::fs::rename(&from, self.numbered(n + 1))?;
            }
        }
        if self.keep > 0 {
            std::fs::rename(&self.path, self.numbered(1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Changes the log filter of the running process (`blippcmd log-level`).
#[derive(Clone, Debug)]
pub struct LevelHandle(reload::Handle<EnvFilter, Registry>);

/// Why a new log filter was refused.
#[derive(Debug, thiserror::Error)]
pub enum LevelError {
    /// Neither a level nor filter directives.
    #[error(
        "{text:?} is invalid: expected TRACE, DEBUG, INFO, WARN, ERROR or filter directives such as blipp::arbiter=debug,info ({reason})"
    )]
    Parse {
        /// What was asked for.
        text: String,
        /// The parser's reason.
        reason: String,
    },
    /// The subscriber is gone.
    #[error("the log filter cannot be changed: {0}")]
    Reload(String),
}

impl LevelHandle {
    /// Sets the filter to a level (`debug`, any case) or to `tracing`
    /// filter directives (`blipp::arbiter=trace,info`). Returns the filter
    /// now in effect.
    pub fn set(&self, text: &str) -> Result<String, LevelError> {
        let directive = <LogLevel as clap::ValueEnum>::from_str(text, true)
            .map_or_else(|_| text.to_owned(), |l| l.directive().to_owned());
        let filter = EnvFilter::try_new(&directive).map_err(|e| LevelError::Parse {
            text: text.to_owned(),
            reason: e.to_string(),
        })?;
        let shown = filter.to_string();
        self.0
            .reload(filter)
            .map_err(|e| LevelError::Reload(e.to_string()))?;
        Ok(shown)
    }

    /// The filter in effect.
    pub fn current(&self) -> String {
        self.0.with_current(ToString::to_string).unwrap_or_default()
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `level`.
/// The returned handle changes the filter later.
pub fn init(level: LogLevel, file: Option<&Path>) -> io::Result<LevelHandle> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level.directive()));
    let (filter, handle) = reload::Layer::new(filter);
    let (to_file, to_stderr) = match file {
        Some(path) => (
            Some(
                fmt::layer()
                    .with_ansi(false)
                    .with_writer(Mutex::new(RotatingFile::open(path, 500_000, 5)?)),
            ),
            None,
        ),
        None => (
            None,
            Some(
                fmt::layer()
                    .with_ansi(io::stderr().is_terminal())
                    .with_writer(io::stderr),
            ),
        ),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(to_file)
        .with(to_stderr)
        .try_init()
        .map_err(io::Error::other)?;
    Ok(LevelHandle(handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blippd.log");
        let mut f = RotatingFile::open(&path, 100, 2).unwrap();
        for i in 0..10 {
            writeln!(f, "{i:0>59}").unwrap();
        }
        assert!(path.exists());
        assert!(dir.path().join("blippd.log.1").exists());
        assert!(dir.path().join("blippd.log.2").exists());
        assert!(!dir.path().join("blippd.log.3").exists(), "keep limit");
        assert!(std::fs::metadata(&path).unwrap().len() <= 100);
    }
}
