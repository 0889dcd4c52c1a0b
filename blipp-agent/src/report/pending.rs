//! Samples waiting for the UNIS/MS sink: each probe's most recent reports
//! in memory (`reporting_tolerance` of them), older ones in the disk spool,
//! handed out oldest first in bounded chunks and taken back when a delivery
//! fails.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use super::spool::{Spool, SpoolError};
use crate::config::Config;
use crate::sample::{Name, Sample};

/// At most this many samples per delivery step (one `POST /data` per MS).
const CHUNK_SAMPLES: usize = 5000;
/// Reports kept in memory per probe when the configuration does not say.
const DEFAULT_TOLERANCE: u32 = 10;

/// Samples taken for one delivery step, and where they came from.
pub struct Chunk {
    /// The samples, by probe.
    pub batches: Vec<(Name, Vec<Sample>)>,
    origin: Origin,
}

enum Origin {
    Memory,
    /// A segment, and whether it was sent before.
    Spool(PathBuf, bool),
}

impl Chunk {
    /// How many samples.
    pub fn samples(&self) -> usize {
        self.batches.iter().map(|(_, s)| s.len()).sum()
    }

    /// It was sent before and may have arrived: the MS is to be asked
    /// which of its samples it holds before it is sent again.
    pub fn uncertain(&self) -> bool {
        matches!(self.origin, Origin::Spool(_, true))
    }

    /// It came from memory.
    pub fn from_memory(&self) -> bool {
        matches!(self.origin, Origin::Memory)
    }
}

/// Samples waiting for delivery: recent reports in memory (a bounded number
/// per probe), older ones in the spool.
pub struct Pending {
    memory: VecDeque<(Name, Vec<Sample>)>,
    per_probe: HashMap<Name, u32>,
    tolerance: HashMap<String, u32>,
    spool: Option<Spool>,
    /// Deliveries fail: every report goes to the spool as it comes, so
    /// that killing blippd loses none of it.
    durable: bool,
    /// Samples lost for want of a spool (or because it failed).
    pub dropped: u64,
}

impl Pending {
    /// An empty buffer over `spool` (`None`: memory only).
    pub fn new(spool: Option<Spool>) -> Self {
        Self {
            memory: VecDeque::new(),
            per_probe: HashMap::new(),
            tolerance: HashMap::new(),
            spool,
            durable: false,
            dropped: 0,
        }
    }

    /// A delivery failed: what is in memory goes to the spool, and so does
    /// every report from now on until [`Pending::delivered`]. When the
    /// failed chunk came from memory (`uncertain`: it may have arrived),
    /// what is spooled now is marked to be checked against the MS before
    /// it is sent again. Without a spool, reports stay in memory up to
    /// their `reporting_tolerance`.
    pub fn hold_on_disk(&mut self, uncertain: bool) {
        if self.spool.is_none() || self.durable && self.memory.is_empty() {
            return;
        }
        self.durable = true;
        let was_empty = self.spool.as_ref().is_some_and(Spool::is_empty);
        let lost = self.persist();
        if lost > 0 {
            tracing::error!(samples = lost, "samples lost: the spool cannot take them");
        }
        if uncertain
            && was_empty
            && let Some(spool) = &mut self.spool
            && let Err(e) = spool.all_uncertain()
        {
            tracing::error!(error = %e, "marking spooled samples as perhaps sent");
        }
    }

    /// Everything was delivered: reports wait in memory again.
    pub fn delivered(&mut self) {
        self.durable = false;
    }

    /// A chunk is about to be sent.
    pub fn sending(&self, chunk: &Chunk) -> Result<(), SpoolError> {
        match (&chunk.origin, &self.spool) {
            (Origin::Spool(path, _), Some(spool)) => spool.sending(path),
            _ => Ok(()),
        }
    }

    /// Takes each probe's `reporting_tolerance`.
    pub fn set_tolerances(&mut self, config: &Config) {
        self.tolerance = config
            .probes
            .iter()
            .map(|p| (p.name.clone(), p.reporting_tolerance))
            .collect();
    }

    /// Bytes in the spool.
    pub fn spooled_bytes(&self) -> u64 {
        self.spool.as_ref().map_or(0, Spool::bytes)
    }

    /// Samples waiting in memory.
    pub fn memory_samples(&self) -> u64 {
        self.memory.iter().map(|(_, s)| s.len() as u64).sum()
    }

    /// Whether anything waits.
    pub fn is_empty(&self) -> bool {
        self.memory.is_empty() && self.spool.as_ref().is_none_or(Spool::is_empty)
    }

    /// Adds a report; a probe's oldest report in memory beyond its
    /// tolerance moves to the spool.
    pub fn push(&mut self, probe: Name, samples: Vec<Sample>) {
        if self.durable {
            self.spool_or_drop(&probe, &samples);
            return;
        }
        let limit = self
            .tolerance
            .get(probe.as_ref())
            .copied()
            .unwrap_or(DEFAULT_TOLERANCE);
        let count = self.per_probe.entry(Name::clone(&probe)).or_insert(0);
        *count += 1;
        let over = *count > limit;
        self.memory.push_back((Name::clone(&probe), samples));
        if over && let Some(i) = self.memory.iter().position(|(p, _)| *p == probe) {
            let (p, samples) = self.memory.remove(i).expect("found it");
            if let Some(c) = self.per_probe.get_mut(&p) {
                *c -= 1;
            }
            self.spool_or_drop(&p, &samples);
        }
    }

    fn spool_or_drop(&mut self, probe: &str, samples: &[Sample]) {
        let result = match &mut self.spool {
            Some(spool) => spool.append(probe, samples),
            None => {
                self.dropped += samples.len() as u64;
                tracing::warn!(
                    probe,
                    samples = samples.len(),
                    dropped_total = self.dropped,
                    "no spool: samples beyond reporting_tolerance dropped"
                );
                return;
            }
        };
        if let Err(e) = result {
            self.dropped += samples.len() as u64;
            tracing::error!(error = %e, samples = samples.len(), "spooling failed: samples dropped");
        }
    }

    /// The spool's segments, oldest first: delivered before what is in
    /// memory, which is newer.
    pub fn segments(&mut self) -> Result<Vec<PathBuf>, SpoolError> {
        match &mut self.spool {
            Some(spool) => spool.segments(),
            None => Ok(Vec::new()),
        }
    }

    /// One spool segment's samples.
    pub fn segment(&mut self, path: PathBuf) -> Result<Option<Chunk>, SpoolError> {
        let Some(spool) = &self.spool else {
            return Ok(None);
        };
        let oldest = spool.read(path)?;
        Ok(Some(Chunk {
            batches: oldest.batches,
            origin: Origin::Spool(oldest.path, oldest.uncertain),
        }))
    }

    /// Up to [`CHUNK_SAMPLES`] from memory, oldest first.
    pub fn take_memory(&mut self) -> Option<Chunk> {
        self.take_memory_up_to(CHUNK_SAMPLES)
    }

    /// Reports from memory, oldest first, until they hold `max` samples
    /// or more (remote write's `batch_max_samples`).
    pub fn take_memory_up_to(&mut self, max: usize) -> Option<Chunk> {
        let mut batches = Vec::new();
        let mut n = 0;
        while n < max
            && let Some((probe, samples)) = self.memory.pop_front()
        {
            if let Some(c) = self.per_probe.get_mut(&probe) {
                *c -= 1;
            }
            n += samples.len();
            batches.push((probe, samples));
        }
        (!batches.is_empty()).then_some(Chunk {
            batches,
            origin: Origin::Memory,
        })
    }

    /// A chunk was delivered except `waiting`, the samples of series whose
    /// MS collection does not exist yet: a spool segment keeps just those,
    /// in its place; from memory they go to the spool (durable, after
    /// everything older) or, without one, are returned to be put back in
    /// front once this round is over.
    pub fn delivered_but(
        &mut self,
        chunk: Chunk,
        waiting: Vec<(Name, Vec<Sample>)>,
    ) -> Result<Vec<(Name, Vec<Sample>)>, SpoolError> {
        if waiting.is_empty() {
            self.done(chunk)?;
            return Ok(Vec::new());
        }
        let unchanged = waiting.iter().map(|(_, s)| s.len()).sum::<usize>() == chunk.samples();
        match (&chunk.origin, &mut self.spool) {
            // Nothing of it went out: it stays as it is.
            (Origin::Spool(..), Some(_)) if unchanged => Ok(Vec::new()),
            (Origin::Spool(path, _), Some(spool)) => {
                spool.rewrite(path, &waiting)?;
                Ok(Vec::new())
            }
            (_, Some(_)) => {
                for (probe, samples) in &waiting {
                    self.spool_or_drop(probe, samples);
                }
                Ok(Vec::new())
            }
            (_, None) => Ok(waiting),
        }
    }

    /// Puts `batches` back in front of memory, in their order.
    pub fn put_back(&mut self, batches: Vec<(Name, Vec<Sample>)>) {
        for (probe, samples) in batches.into_iter().rev() {
            *self.per_probe.entry(Name::clone(&probe)).or_insert(0) += 1;
            self.memory.push_front((probe, samples));
        }
    }

    /// A chunk was delivered (or dropped for good).
    pub fn done(&mut self, chunk: Chunk) -> Result<(), SpoolError> {
        if let (Origin::Spool(path, _), Some(spool)) = (&chunk.origin, &mut self.spool) {
            spool.remove(path)?;
        }
        Ok(())
    }

    /// A chunk could not be delivered: it waits again, in front.
    pub fn give_back(&mut self, chunk: Chunk) {
        if let Origin::Memory = chunk.origin {
            self.put_back(chunk.batches);
        }
    }

    /// Moves everything in memory to the spool (at shutdown) and syncs it.
    /// Returns the samples that could not be kept.
    pub fn persist(&mut self) -> u64 {
        let before = self.dropped;
        while let Some((probe, samples)) = self.memory.pop_front() {
            self.spool_or_drop(&probe, &samples);
        }
        self.per_probe.clear();
        if let Some(spool) = &mut self.spool
            && let Err(e) = spool.sync()
        {
            tracing::error!(error = %e, "syncing the spool");
        }
        self.dropped - before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Source, Timestamp, Value};

    fn batch(ts: u64) -> Vec<Sample> {
        vec![Sample::new(
            Timestamp(ts),
            &Name::from("node"),
            &Name::from("e"),
            Value::Int(ts),
            Source::Proc,
        )]
    }

    fn ts_of(c: &Chunk) -> Vec<u64> {
        c.batches
            .iter()
            .flat_map(|(_, s)| s.iter().map(|x| x.ts.0))
            .collect()
    }

    /// Everything, as a delivery round takes it: the spool's segments,
    /// then memory.
    fn all(p: &mut Pending) -> Vec<u64> {
        let mut out = Vec::new();
        for path in p.segments().unwrap() {
            let c = p.segment(path).unwrap().unwrap();
            out.extend(ts_of(&c));
            p.done(c).unwrap();
        }
        while let Some(c) = p.take_memory() {
            out.extend(ts_of(&c));
            p.done(c).unwrap();
        }
        out
    }

    #[test]
    fn beyond_tolerance_to_the_spool_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pending::new(Some(Spool::open(dir.path(), 1 << 30).unwrap()));
        p.tolerance.insert("cpu".into(), 2);
        for ts in 1..=5 {
            p.push(Name::from("cpu"), batch(ts));
        }
        assert_eq!(p.memory.len(), 2, "tolerance 2 in memory");
        assert_eq!(all(&mut p), [1, 2, 3, 4, 5], "spool first, in order");
        assert!(p.is_empty());
    }

    #[test]
    fn give_back_keeps_order_and_persist_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pending::new(Some(Spool::open(dir.path(), 1 << 30).unwrap()));
        for ts in 1..=3 {
            p.push(Name::from("mem"), batch(ts));
        }
        let c = p.take_memory().unwrap();
        p.give_back(c);
        p.push(Name::from("mem"), batch(4));
        assert_eq!(p.persist(), 0);
        drop(p);
        let mut again = Pending::new(Some(Spool::open(dir.path(), 1 << 30).unwrap()));
        assert_eq!(
            all(&mut again),
            [1, 2, 3, 4],
            "a restart delivers what was pending"
        );
    }

    #[test]
    fn after_a_failure_everything_is_on_disk_and_waiting_samples_keep_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pending::new(Some(Spool::open(dir.path(), 1 << 30).unwrap()));
        p.push(Name::from("mem"), batch(1));
        p.hold_on_disk(true);
        p.push(Name::from("mem"), batch(2));
        assert!(p.memory.is_empty(), "on disk as they come");
        let segments = p.segments().unwrap();
        let c = p.segment(segments[0].clone()).unwrap().unwrap();
        assert!(c.uncertain(), "a failed send from memory may have arrived");
        // Of the first segment, one series still waits: it keeps that place.
        let waiting = c.batches.clone();
        p.delivered_but(c, waiting).unwrap();
        p.push(Name::from("mem"), batch(3));
        drop(p);
        // A restart (SIGKILL included: nothing was synced at shutdown).
        let mut again = Pending::new(Some(Spool::open(dir.path(), 1 << 30).unwrap()));
        assert_eq!(all(&mut again), [1, 2, 3]);
    }

    #[test]
    fn without_a_spool_the_overflow_is_counted() {
        let mut p = Pending::new(None);
        p.tolerance.insert("cpu".into(), 1);
        for ts in 1..=3 {
            p.push(Name::from("cpu"), batch(ts));
        }
        assert_eq!(p.dropped, 2);
        assert_eq!(all(&mut p), [3]);
    }
}
