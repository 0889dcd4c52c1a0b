//! From collected samples to their destinations: a [`collector::Collector`]
//! per probe batches `reporting_params` collections, the [`Reporter`] task
//! hands each batch to its sinks: stdout, data files, and the UNIS/MS sink
//! ([`unis_ms`], its own task, with the [`spool`] behind it).

pub mod aggregate;
pub mod collector;
pub mod original_file;
pub mod pending;
pub mod prometheus;
pub mod remote_write;
pub mod sink;
pub mod sketch;
pub mod spool;
pub mod stats;
pub mod unis_ms;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::sample::Sample;
use sink::JsonLines;

/// Where one probe's batches go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    /// Print on stdout as JSON lines.
    pub stdout: bool,
    /// Append to this JSON-lines file (the probe's `data_file`).
    pub data_file: Option<PathBuf>,
    /// How the data file is written; in the original's format, a probe
    /// that reports to the MS has its lines written by the UNIS/MS sink,
    /// which knows the mids.
    pub data_file_format: crate::config::DataFileFormat,
    /// Hand to the UNIS/MS sink.
    pub unis: bool,
}

/// The samples of `reporting_params` collections of one probe.
#[derive(Debug)]
pub struct Batch {
    /// The probe's name.
    pub probe: Arc<str>,
    /// Its destinations.
    pub route: Arc<Route>,
    /// The samples, in collection order.
    pub samples: Vec<Sample>,
}

/// Why a sink failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing a JSON-lines destination failed.
    #[error("writing {destination}: {source}")]
    Write {
        /// `stdout` or the file's path.
        destination: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Opens a data file for appending, and says which file it is (device and
/// inode), so that two names of one file share a descriptor.
pub(super) fn open_data_file(path: &Path) -> std::io::Result<((u64, u64), std::fs::File)> {
    use std::os::unix::fs::MetadataExt as _;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let meta = file.metadata()?;
    Ok(((meta.dev(), meta.ino()), file))
}

/// Receives batches until every sender is gone, then flushes and returns.
pub struct Reporter {
    rx: mpsc::Receiver<Batch>,
    unis: Option<mpsc::Sender<Batch>>,
    /// The remote-write destinations, which receive every batch.
    remote_write: Vec<mpsc::Sender<Batch>>,
    stdout: JsonLines<std::io::Stdout>,
    /// Open data files by identity (device, inode), with the name they
    /// were first opened by.
    files: HashMap<(u64, u64), (PathBuf, JsonLines<std::fs::File>)>,
    /// Every name a probe gave, to the file it names.
    aliases: HashMap<PathBuf, (u64, u64)>,
    /// Writes to stdout or a data file that failed: what a run that ends
    /// by itself (`--once`, `--duration`) reports in its exit status.
    failures: u64,
}

impl Reporter {
    /// A reporter and the sender probes use. The channel is bounded so that
    /// a stuck sink slows probes down instead of growing memory.
    /// Batches routed to UNIS go on to `unis`.
    pub fn new(capacity: usize, unis: Option<mpsc::Sender<Batch>>) -> (Self, mpsc::Sender<Batch>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            Self {
                rx,
                unis,
                remote_write: Vec::new(),
                stdout: JsonLines::new(std::io::stdout()),
                files: HashMap::new(),
                aliases: HashMap::new(),
                failures: 0,
            },
            tx,
        )
    }

    /// Hands every batch to these remote-write sinks as well.
    #[must_use]
    pub fn with_remote_write(mut self, sinks: Vec<mpsc::Sender<Batch>>) -> Self {
        self.remote_write = sinks;
        self
    }

    /// Runs until all senders are dropped. A failing destination is logged
    /// and skipped; the others keep receiving. The batches that are waiting
    /// when the reporter wakes (the probes of one tick) are written to
    /// each destination with one system call. Returns how many writes (or
    /// opens of a data file) failed.
    pub async fn run(mut self) -> u64 {
        let mut waiting = Vec::new();
        let mut pending_sends = Vec::new();
        while self.rx.recv_many(&mut waiting, usize::MAX).await > 0 {
            for batch in &waiting {
                self.encode(batch);
            }
            self.write_pending();
            for batch in waiting.drain(..) {
                self.remote_write.retain(|sink| {
                    if batch.samples.is_empty() {
                        return true;
                    }
                    // A copy per destination: samples share their names,
                    // the copy is the vector and the values.
                    let copy = Batch {
                        probe: Arc::clone(&batch.probe),
                        route: Arc::clone(&batch.route),
                        samples: batch.samples.clone(),
                    };
                    match sink.try_send(copy) {
                        Ok(()) => true,
                        Err(mpsc::error::TrySendError::Full(copy)) => {
                            // Rare (the sink only queues): wait for room
                            // rather than drop.
                            pending_sends.push((sink.clone(), copy));
                            true
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            tracing::error!("a remote-write sink has stopped");
                            false
                        }
                    }
                });
                for (sink, copy) in pending_sends.drain(..) {
                    let _ = sink.send(copy).await;
                }
                if batch.route.unis
                    && let Some(unis) = &self.unis
                    && unis.send(batch).await.is_err()
                {
                    tracing::error!("the UNIS/MS sink has stopped");
                    self.unis = None;
                }
            }
        }
        if let Err(e) = self.stdout.flush() {
            self.failures += 1;
            tracing::error!(error = %e, "flushing stdout");
        }
        self.failures
    }

    /// Encodes `batch` for its JSON-lines destinations, opening its data
    /// file the first time.
    fn encode(&mut self, batch: &Batch) {
        if batch.route.stdout {
            self.stdout.append(&batch.samples);
        }
        let original = batch.route.data_file_format == crate::config::DataFileFormat::Original;
        if original && batch.route.unis {
            // The UNIS/MS sink writes them, with their mids.
        } else if let Some(path) = &batch.route.data_file {
            if !self.aliases.contains_key(path) {
                match open_data_file(path) {
                    Ok((id, file)) => {
                        // Another name of a file already open (`./x` and
                        // `x`, a link) shares its descriptor.
                        self.files
                            .entry(id)
                            .or_insert_with(|| (path.clone(), JsonLines::new(file)));
                        self.aliases.insert(path.clone(), id);
                    }
                    Err(source) => {
                        self.failures += 1;
                        let e = ReportError::Write {
                            destination: path.display().to_string(),
                            source,
                        };
                        tracing::error!(probe = %batch.probe, error = %e, "report failed");
                    }
                }
            }
            if let Some((_, sink)) = self.aliases.get(path).and_then(|id| self.files.get_mut(id)) {
                if original {
                    let mut text = String::new();
                    for s in &batch.samples {
                        sink::original_line(
                            &mut text,
                            s.ts.0,
                            &s.event_type,
                            None,
                            Some(&s.subject),
                            &sink::value_text(&s.value),
                        );
                    }
                    sink.append_raw(text.as_bytes());
                } else {
                    sink.append(&batch.samples);
                }
            }
        }
    }

    /// Writes what was encoded to every destination; a failing one is
    /// logged and the others still written.
    fn write_pending(&mut self) {
        let stdout = self
            .stdout
            .write_pending()
            .map_err(|source| ReportError::Write {
                destination: "stdout".into(),
                source,
            });
        let files = self.files.values_mut().map(|(path, sink)| {
            sink.write_pending().map_err(|source| ReportError::Write {
                destination: path.display().to_string(),
                source,
            })
        });
        for e in std::iter::once(stdout).chain(files).filter_map(Result::err) {
            self.failures += 1;
            tracing::error!(error = %e, "report failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Name, Source, Timestamp, Value};

    fn batch(probe: &str, route: &Arc<Route>) -> Batch {
        let node = Name::from("node");
        let event = Name::from("ps:test");
        Batch {
            probe: Arc::from(probe),
            route: Arc::clone(route),
            samples: vec![Sample::new(
                Timestamp(1),
                &node,
                &event,
                Value::Int(1),
                Source::Proc,
            )],
        }
    }

    /// Issue 16: probes that name the same data file share one
    /// descriptor; a file that cannot be opened counts as a failure.
    #[test]
    fn a_shared_data_file_is_one_descriptor_and_failures_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(Route {
            data_file: Some(dir.path().join("all.jsonl")),
            ..Route::default()
        });
        let (mut reporter, _tx) = Reporter::new(4, None);
        for name in ["a", "b", "c"] {
            reporter.encode(&batch(name, &shared));
        }
        assert_eq!(reporter.files.len(), 1);
        reporter.write_pending();
        let text = std::fs::read_to_string(dir.path().join("all.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert_eq!(reporter.failures, 0);
        let bad = Arc::new(Route {
            data_file: Some(dir.path().to_owned()),
            ..Route::default()
        });
        reporter.encode(&batch("d", &bad));
        assert_eq!(reporter.failures, 1, "a directory cannot be appended to");
    }

    /// Other names of one file (`./x` for `x`, a symbolic or hard link)
    /// are one descriptor too, and lines through each land in the file.
    #[test]
    fn other_names_of_a_data_file_share_its_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.jsonl");
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        // A hard link made once the file exists (the first encode creates it).
        let hard = dir.path().join("hard.jsonl");
        let names = [file.clone(), link, hard.clone()];
        let (mut reporter, _tx) = Reporter::new(4, None);
        for (i, name) in names.iter().enumerate() {
            if *name == hard {
                std::fs::hard_link(&file, &hard).unwrap();
            }
            let route = Arc::new(Route {
                data_file: Some(name.clone()),
                ..Route::default()
            });
            reporter.encode(&batch(&format!("p{i}"), &route));
        }
        assert_eq!(reporter.files.len(), 1);
        assert_eq!(reporter.aliases.len(), 3);
        reporter.write_pending();
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 3);
    }
}
