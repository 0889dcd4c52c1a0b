//! The disk spool: samples that UNIS or the MS could not take yet, kept
//! in order across outages and restarts, up to a size limit.
//!
//! A directory of numbered segment files, one JSON object per line
//! (`probe`, `ts`, `subject`, `eventType`, `value`, `source`, `reset`):
//! the agent appends to the newest, delivers and deletes the oldest. Past
//! the limit the oldest segment is dropped, and the loss counted in the
//! log. A lock file keeps two blippds from sharing one spool.
//!
//! Durability: every append is written to the kernel before it returns,
//! so a sample spooled survives blippd being killed (SIGKILL) at any later
//! moment; the segment being written is synced to the disk at most once a
//! second ([`SYNC_EVERY`]) and whenever it is closed, so a power loss
//! costs at most the last second of an outage.
//!
//! Exactly once: before a segment is sent, a marker `<segment>.sent` is
//! made. A segment found with its marker (blippd was killed during the
//! send, or the send's answer was lost) may have reached the MS already,
//! so the sink asks the MS which of its samples it holds before sending it
//! again ([`Spool::oldest`] says so).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter, Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::sample::{Name, Sample, Source, Timestamp, Value};

/// A segment is closed and a new one begun past this size, so that one
/// delivery never has to read more than this.
const SEGMENT_BYTES: u64 = 1 << 20;

/// The segment being written is synced to the disk at most this often.
const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The marker of a segment that was (perhaps) sent.
fn sent_marker(segment: &Path) -> PathBuf {
    let mut name = segment.as_os_str().to_owned();
    name.push(".sent");
    PathBuf::from(name)
}

/// Why the spool cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another blippd holds the spool.
    #[error("{}: another blippd uses this spool", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
}

/// One spooled sample, as a line.
#[derive(Serialize, Deserialize)]
struct Line<'a> {
    probe: &'a str,
    ts: u64,
    subject: &'a str,
    #[serde(rename = "eventType")]
    event_type: &'a str,
    value: serde_json::Value,
    source: &'a str,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    reset: bool,
}

/// The samples of one probe read back from a segment.
pub type Spooled = Vec<(Name, Vec<Sample>)>;

/// An open, locked spool directory.
pub struct Spool {
    dir: PathBuf,
    limit: u64,
    _lock: File,
    /// Closed segments, oldest first: (path, bytes).
    closed: VecDeque<(PathBuf, u64)>,
    current: Option<(PathBuf, BufWriter<File>, u64)>,
    next: u64,
    /// When the segment being written was last synced.
    synced: std::time::Instant,
    /// Samples dropped to keep within the limit (an estimate from sizes).
    pub dropped_bytes: u64,
}

/// The oldest segment, read back.
pub struct Oldest {
    /// The segment, to remove once delivered.
    pub path: PathBuf,
    /// Its samples, grouped by probe.
    pub batches: Spooled,
    /// It was sent before (perhaps received): check before sending again.
    pub uncertain: bool,
}

fn io(path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> SpoolError {
    let path = path.to_owned();
    move |source| SpoolError::Io { path, op, source }
}

fn segment_number(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

impl Spool {
    /// Opens (and creates) `dir`, taking its lock; segments left by an
    /// earlier run are kept for delivery.
    pub fn open(dir: &Path, limit: u64) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir, "creating"))?;
        let lock_path = dir.join("lock");
        let lock = File::create(&lock_path).map_err(io(&lock_path, "creating the lock"))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(SpoolError::Locked { path: lock_path });
        }
        let mut segments: Vec<(u64, PathBuf, u64)> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir, "listing"))? {
            let path = entry.map_err(io(dir, "listing"))?.path();
            let Some(n) = segment_number(&path) else {
                continue;
            };
            // Only regular files are segments: anything else under a
            // segment's name (a FIFO, a directory, a link) is not what
            // blippd wrote, and reading it could block or never end.
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_file() => segments.push((n, path, m.len())),
                Ok(m) => tracing::warn!(
                    path = %path.display(),
                    kind = ?m.file_type(),
                    "spool: not a regular file, left alone"
                ),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "spool: unreadable, left alone")
                }
            }
        }
        segments.sort();
        // Markers whose segment is gone (removed after delivery, before
        // the marker) mean nothing.
        for entry in std::fs::read_dir(dir).map_err(io(dir, "listing"))? {
            let path = entry.map_err(io(dir, "listing"))?.path();
            let Some(segment) = path.to_str().and_then(|p| p.strip_suffix(".sent")) else {
                continue;
            };
            if !Path::new(segment).exists() {
                let _ = std::fs::remove_file(&path);
            }
        }
        let next = segments.last().map_or(0, |(n, _, _)| n + 1);
        Ok(Self {
            dir: dir.to_owned(),
            limit,
            _lock: lock,
            closed: segments.into_iter().map(|(_, p, s)| (p, s)).collect(),
            current: None,
            next,
            synced: std::time::Instant::now(),
            dropped_bytes: 0,
        })
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.closed.iter().map(|(_, s)| s).sum::<u64>()
            + self.current.as_ref().map_or(0, |(_, _, s)| *s)
    }

    /// Whether nothing is spooled.
    pub fn is_empty(&self) -> bool {
        self.bytes() == 0
    }

    fn close_current(&mut self) -> Result<(), SpoolError> {
        if let Some((path, mut w, size)) = self.current.take() {
            w.flush().map_err(io(&path, "writing"))?;
            w.get_ref().sync_data().map_err(io(&path, "syncing"))?;
            self.closed.push_back((path, size));
        }
        Ok(())
    }

    /// Appends one probe's samples.
    pub fn append(&mut self, probe: &str, samples: &[Sample]) -> Result<(), SpoolError> {
        if self
            .current
            .as_ref()
            .is_some_and(|(_, _, s)| *s >= SEGMENT_BYTES)
        {
            self.close_current()?;
        }
        if self.current.is_none() {
            let path = self.dir.join(format!("{:020}.jsonl", self.next));
            self.next += 1;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path, "creating"))?;
            self.current = Some((path, BufWriter::new(file), 0));
        }
        let (path, w, size) = self.current.as_mut().expect("just opened");
        for s in samples {
            let text = line_of(probe, s);
            w.write_all(&text).map_err(io(path, "writing"))?;
            *size += text.len() as u64;
        }
        w.flush().map_err(io(path, "writing"))?;
        if self.synced.elapsed() >= SYNC_EVERY {
            w.get_ref().sync_data().map_err(io(path, "syncing"))?;
            self.synced = std::time::Instant::now();
        }
        self.enforce_limit();
        Ok(())
    }

    /// Notes that `segment` is being sent: if blippd dies before it is
    /// removed, the next start checks the MS before sending it again.
    pub fn sending(&self, segment: &Path) -> Result<(), SpoolError> {
        let marker = sent_marker(segment);
        if marker.exists() {
            return Ok(());
        }
        File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(io(&marker, "creating"))
    }

    /// Marks every closed segment as perhaps sent (a send of what they now
    /// hold failed in a way that does not tell whether it arrived).
    pub fn all_uncertain(&mut self) -> Result<(), SpoolError> {
        self.close_current()?;
        for (path, _) in &self.closed {
            self.sending(path)?;
        }
        Ok(())
    }

    /// Drops the oldest segments while over the limit.
    fn enforce_limit(&mut self) {
        while self.bytes() > self.limit {
            // The segment being written stays, even past a tiny limit.
            let Some((path, size)) = self.closed.pop_front() else {
                return;
            };
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a spool segment");
            }
            self.dropped_bytes += size;
            tracing::warn!(
                bytes = size,
                dropped_total = self.dropped_bytes,
                limit = self.limit,
                "spool full: dropped its oldest samples"
            );
        }
    }

    /// The segments, oldest first (the one being written is closed
    /// first, so that every sample spooled so far is in one of them).
    pub fn segments(&mut self) -> Result<Vec<PathBuf>, SpoolError> {
        self.close_current()?;
        Ok(self.closed.iter().map(|(p, _)| p.clone()).collect())
    }

    /// The oldest segment, read back (see [`Spool::read`]).
    pub fn oldest(&mut self) -> Result<Option<Oldest>, SpoolError> {
        if self.closed.is_empty() {
            self.close_current()?;
        }
        let Some((path, _)) = self.closed.front().cloned() else {
            return Ok(None);
        };
        self.read(path).map(Some)
    }

    /// A segment's samples, grouped by probe, and the segment to remove
    /// once they are delivered. Lines that do not parse are skipped with a
    /// warning.
    pub fn read(&self, path: PathBuf) -> Result<Oldest, SpoolError> {
        let file = crate::bounded::open_regular(&path).map_err(io(&path, "opening"))?;
        let mut out: Spooled = Vec::new();
        let mut bad = 0usize;
        // A segment is never longer than the spool's limit as blippd
        // writes it; reading no further bounds what a foreign file costs.
        for line in BufReader::new(file.take(self.limit)).lines() {
            let line = line.map_err(io(&path, "reading"))?;
            match parse(&line) {
                Some((probe, sample)) => match out.last_mut() {
                    Some((p, samples)) if **p == *probe => samples.push(sample),
                    _ => out.push((probe, vec![sample])),
                },
                None if line.trim().is_empty() => {}
                None => bad += 1,
            }
        }
        if bad > 0 {
            tracing::warn!(path = %path.display(), lines = bad, "spool lines that are not samples skipped");
        }
        let uncertain = sent_marker(&path).exists();
        Ok(Oldest {
            path,
            batches: out,
            uncertain,
        })
    }

    /// Replaces a segment's content with `batches` (what of it still
    /// waits), keeping its place in the order; written beside, synced and
    /// renamed over, so that a crash leaves the old content or the new.
    /// The content was never sent: the segment's marker goes.
    pub fn rewrite(
        &mut self,
        path: &Path,
        batches: &[(Name, Vec<Sample>)],
    ) -> Result<(), SpoolError> {
        let tmp = path.with_extension("rewrite");
        let mut w = BufWriter::new(File::create(&tmp).map_err(io(&tmp, "creating"))?);
        let mut size = 0u64;
        for (probe, samples) in batches {
            for s in samples {
                let text = line_of(probe, s);
                w.write_all(&text).map_err(io(&tmp, "writing"))?;
                size += text.len() as u64;
            }
        }
        let file = w
            .into_inner()
            .map_err(|e| io(&tmp, "writing")(e.into_error()))?;
        file.sync_data().map_err(io(&tmp, "syncing"))?;
        std::fs::rename(&tmp, path).map_err(io(path, "replacing"))?;
        if let Some(entry) = self.closed.iter_mut().find(|(p, _)| p == path) {
            entry.1 = size;
        }
        match std::fs::remove_file(sent_marker(path)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(path, "removing the marker")(e))
            }
            _ => Ok(()),
        }
    }

    /// Removes a delivered segment.
    pub fn remove(&mut self, path: &Path) -> Result<(), SpoolError> {
        self.closed.retain(|(p, _)| p != path);
        std::fs::remove_file(path).map_err(io(path, "removing"))?;
        let marker = sent_marker(path);
        match std::fs::remove_file(&marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&marker, "removing")(e)),
            _ => Ok(()),
        }
    }

    /// Writes everything to disk (at shutdown).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        self.close_current()
    }
}

/// One sample as a spool line, with its newline.
fn line_of(probe: &str, s: &Sample) -> Vec<u8> {
    let line = Line {
        probe,
        ts: s.ts.0,
        subject: &s.subject,
        event_type: &s.event_type,
        value: serde_json::to_value(&s.value).unwrap_or(serde_json::Value::Null),
        source: s.source.as_str(),
        reset: s.reset,
    };
    let mut text = serde_json::to_vec(&line).expect("a line serializes");
    text.push(b'\n');
    text
}

fn parse(line: &str) -> Option<(Name, Sample)> {
    let l: Line<'_> = serde_json::from_str(line).ok()?;
    let value = match l.value {
        serde_json::Value::Number(n) => match n.as_u64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64()?),
        },
        serde_json::Value::String(s) => Value::Text(Arc::from(s)),
        _ => return None,
    };
    let source = Source::from_name(l.source)?;
    let mut sample = Sample::new(
        Timestamp(l.ts),
        &Name::from(l.subject),
        &Name::from(l.event_type),
        value,
        source,
    );
    sample.reset = l.reset;
    Some((Name::from(l.probe), sample))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every source comes back as it went in (commands' and logs' samples
    /// were once skipped as "not samples" when read back).
    #[test]
    fn every_source_round_trips() {
        for source in [Source::Ebpf, Source::Proc, Source::Command, Source::Log] {
            let s = Sample::new(
                Timestamp(1),
                &Name::from("node"),
                &Name::from("e"),
                Value::Int(3),
                source,
            );
            let line = line_of("p", &s);
            let (probe, back) = parse(std::str::from_utf8(&line).unwrap().trim_end()).unwrap();
            assert_eq!((&*probe, back), ("p", s));
        }
    }

    fn sample(ts: u64, v: Value) -> Sample {
        Sample::new(
            Timestamp(ts),
            &Name::from("port:eth0"),
            &Name::from("ps:tools:blipp:linux:network:utilization:bytes:in"),
            v,
            Source::Proc,
        )
    }

    #[test]
    fn round_trip_in_order_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
            assert!(s.is_empty());
            s.append(
                "net",
                &[sample(1, Value::Int(10)), sample(2, Value::Float(0.5))],
            )
            .unwrap();
            let mut reset = sample(3, Value::Text(Name::from("R")));
            reset.reset = true;
            s.append("cpu", &[reset]).unwrap();
            assert!(
                matches!(Spool::open(dir.path(), 1), Err(SpoolError::Locked { .. })),
                "one blippd per spool"
            );
            s.sync().unwrap();
        }
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        let Oldest {
            path,
            batches: got,
            uncertain,
        } = s.oldest().unwrap().unwrap();
        assert!(!uncertain, "never sent");
        assert_eq!(got.len(), 2);
        assert_eq!(&*got[0].0, "net");
        assert_eq!(got[0].1[0].value, Value::Int(10));
        assert_eq!(got[0].1[1].value, Value::Float(0.5));
        assert_eq!(got[1].1[0].value, Value::Text(Name::from("R")));
        assert!(got[1].1[0].reset);
        // A send that blippd did not see through leaves its marker: the
        // next start knows the segment may have arrived.
        s.sending(&path).unwrap();
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        let again = s.oldest().unwrap().unwrap();
        assert_eq!(again.path, path);
        assert!(again.uncertain);
        s.remove(&path).unwrap();
        assert!(s.oldest().unwrap().is_none());
        assert!(s.is_empty());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["lock"], "the marker goes with its segment");
    }

    /// What is not a regular file under a segment's name (a FIFO no one
    /// writes to, a directory) is left alone: opening the spool neither
    /// blocks on it nor delivers it.
    #[test]
    fn only_regular_files_are_segments() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = std::ffi::CString::new(
            dir.path()
                .join(format!("{:020}.jsonl", 1))
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        std::fs::create_dir(dir.path().join(format!("{:020}.jsonl", 2))).unwrap();
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        assert!(s.is_empty());
        assert!(s.oldest().unwrap().is_none());
        s.append("net", &[sample(1, Value::Int(10))]).unwrap();
        let got = s.oldest().unwrap().unwrap();
        assert_eq!(got.batches.len(), 1);
    }

    #[test]
    fn limit_drops_the_oldest_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 3 * SEGMENT_BYTES).unwrap();
        let batch: Vec<Sample> = (0..1000).map(|i| sample(i, Value::Int(i))).collect();
        for _ in 0..100 {
            s.append("net", &batch).unwrap();
        }
        assert!(s.bytes() <= 3 * SEGMENT_BYTES, "{}", s.bytes());
        assert!(s.dropped_bytes > 0);
        let got = s.oldest().unwrap().unwrap().batches;
        assert!(!got.is_empty(), "what is left reads back");
    }
}
