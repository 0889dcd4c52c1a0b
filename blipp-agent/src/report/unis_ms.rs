//! The UNIS/MS sink: one task that registers blipp in UNIS, keeps its
//! configuration in step with UNIS, and delivers samples to the MS under
//! their mids.
//!
//! Samples are never lost to an outage: each probe keeps its last
//! `reporting_tolerance` reports in memory, older ones go to the disk
//! spool, and the spool is delivered first (in order) when UNIS and the MS
//! answer again. A blippd that starts while UNIS is down measures anyway
//! and registers when UNIS comes back; one that stops with samples pending
//! leaves them in the spool for the next start.
//!
//! Timing: UNIS is read every `unis_poll_interval`; while it does not
//! answer, the wait doubles up to `unis_max_backoff`. The service's TTL is
//! renewed half way through it. Deliveries follow new reports after a
//! short pause (so that probes reporting together share requests) and back
//! off on their own while the MS fails.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::Batch;
use super::pending::{Chunk, Pending};
use super::spool::{Spool, SpoolError};
use super::stats;
use crate::config::{Config, ProbeConfig};
use crate::sample::{Name, Sample, Timestamp, Value};
use crate::schedule::slots::Slot;
use crate::unis::ms::{Collection, Ms};
use crate::unis::register::SeriesKey;
use crate::unis::reservations::{self, Board};
use crate::unis::watched::Watched;
use crate::unis::{Endpoint, Session, UnisError};

/// Reports arriving within this pause go out together.
const COALESCE: Duration = Duration::from_millis(300);
/// Deliveries back off from this ...
const DELIVERY_RETRY: Duration = Duration::from_secs(1);
/// ... up to this.
const DELIVERY_RETRY_MAX: Duration = Duration::from_secs(60);
/// The next delivery round, when series wait for their MS collection:
/// soon, but after the UNIS poll and new reports had their turn.
const NEXT_ROUND: Duration = Duration::from_millis(100);
/// At shutdown, how long to try to deliver before spooling the rest.
const FINAL_DELIVERY: Duration = Duration::from_secs(10);

/// Why a delivery did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Registration has not succeeded yet.
    #[error("not registered in UNIS yet")]
    NotRegistered,
    /// UNIS or the MS failed.
    #[error(transparent)]
    Unis(#[from] UnisError),
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// The wait before the `failures`-th retry: `base` doubled per earlier
/// failure, at most `max`.
pub fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
    base.saturating_mul(factor)
        .min(max)
        .max(Duration::from_millis(100))
}

fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(300))
}

/// The task.
pub struct UnisMs {
    session: Session,
    http: reqwest::Client,
    ms: HashMap<String, Ms>,
    pending: Pending,
    configs: watch::Sender<Config>,
    published: u64,
    attempted: bool,
    first_report: bool,
    /// The records of the services `registration_probe`s watch.
    watched: Watched,
    /// When they are to be written next.
    watch_at: Option<Instant>,
    watch_failures: u32,
    /// The slots `simple_avoid` probes publish and plan around.
    board: Option<Board>,
    /// Data files in the original's line format.
    original_files: super::original_file::Files,
}

impl UnisMs {
    /// A sink for `session`; configurations from UNIS go to `configs`.
    pub fn new(
        session: Session,
        http: reqwest::Client,
        spool: Option<Spool>,
        configs: watch::Sender<Config>,
    ) -> Self {
        let mut pending = Pending::new(spool);
        pending.set_tolerances(session.config());
        let mut watched = Watched::default();
        watched.configure(session.config());
        Self {
            session,
            http,
            ms: HashMap::new(),
            pending,
            configs,
            published: 0,
            attempted: false,
            first_report: true,
            watched,
            watch_at: None,
            watch_failures: 0,
            board: None,
            original_files: super::original_file::Files::default(),
        }
    }

    /// Keeps `board` in step with UNIS: writes the plans published on it,
    /// reads the others' slots.
    pub fn with_board(mut self, board: Board) -> Self {
        self.board = Some(board);
        self
    }

    /// Sends the configuration to the probes when it changed. The first
    /// attempt to register always notifies, even when it failed, so that
    /// blippd starts its probes without waiting longer.
    fn publish(&mut self) {
        if !self.attempted {
            self.attempted = true;
            if self.session.generation() == self.published {
                self.configs.send_modify(|_| {});
            }
        }
        if self.session.generation() != self.published {
            self.published = self.session.generation();
            self.pending.set_tolerances(self.session.config());
            if self.watched.configure(self.session.config()) {
                self.watch_at = Some(Instant::now());
            }
            self.configs.send_replace(self.session.config().clone());
        }
    }

    /// Tells the `agent` probe what the sink has done and what waits.
    fn progress(&self, failed: bool) {
        if failed {
            stats::SINK.failed();
        }
        stats::SINK.update(stats::Progress {
            unis_requests: self.session.requests(),
            ms_requests: self.ms.values().map(Ms::requests).sum(),
            bytes_sent: self.session.bytes_sent()
                + self.ms.values().map(Ms::bytes_sent).sum::<u64>(),
            spooled_bytes: self.pending.spooled_bytes(),
            memory_samples: self.pending.memory_samples(),
        });
    }

    fn poll_interval(&self) -> Duration {
        seconds(self.session.config().settings.unis_poll_interval)
    }

    fn max_backoff(&self) -> Duration {
        seconds(self.session.config().settings.unis_max_backoff)
    }

    /// Registers or refreshes, renews the TTL when due.
    async fn maintain(&mut self, poll_due: &mut Instant) -> Result<(), UnisError> {
        let now = Instant::now();
        if !self.session.registered() {
            self.session.register().await?;
            *poll_due = now + self.poll_interval();
        } else if now >= *poll_due {
            self.session.refresh().await?;
            *poll_due = now + self.poll_interval();
        }
        if self
            .session
            .renew_at()
            .is_some_and(|t| Instant::from_std(t) <= now)
        {
            self.session.renew().await?;
        }
        self.reserve().await
    }

    /// Writes the `simple_avoid` plans that are new or due for renewal
    /// (a `PUT` of each measurement's `scheduled_times` and `ttl`), then
    /// reads the slots of every measurement that shares one of their
    /// refs, in one `GET`.
    async fn reserve(&mut self) -> Result<(), UnisError> {
        let Some(board) = self.board.clone() else {
            return Ok(());
        };
        if !self.session.registered() || !board.wanted() {
            return Ok(());
        }
        let done = self.reserve_on(&board).await;
        if done.is_err() {
            board.failed();
        }
        done
    }

    async fn reserve_on(&mut self, board: &Board) -> Result<(), UnisError> {
        let ttl = self.session.ttl();
        let unis = self.session.endpoint().clone();
        let now = std::time::Instant::now();
        for (probe, version, plan) in board.due(now, ttl / 2, Timestamp::now()) {
            let Some(m) = self.session.measurement(&probe) else {
                // Nothing to publish it on: it stands on what is read.
                board.written(&probe, version, now);
                continue;
            };
            let body = json!({
                "id": m.id,
                "scheduled_times": plan.iter().map(Slot::to_json).collect::<Vec<_>>(),
                "ttl": ttl.as_secs(),
            });
            unis.put(&format!("/measurements/{}", m.id), &body, "measurement")
                .await?;
            board.written(&probe, version, now);
        }
        let (probes, refs) = board.probes_and_refs();
        if refs.is_empty() {
            return Ok(());
        }
        let before = board.written_versions();
        let found = unis
            .get_list(
                "/measurements",
                &[
                    ("configuration.resources.ref", &refs.join(",")),
                    ("unique", "true"),
                ],
            )
            .await?;
        let own: HashMap<String, String> = probes
            .into_iter()
            .filter_map(|p| {
                let id = self.session.measurement(&p)?.id.clone();
                Some((p, id))
            })
            .collect();
        board.read(reservations::parse(&found, Timestamp::now()), &own, &before);
        Ok(())
    }

    /// Runs until `rx` closes (every probe stopped), then delivers what it
    /// can within [`FINAL_DELIVERY`] and spools the rest.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Batch>) {
        let mut poll_due = Instant::now();
        let mut maint_at = Instant::now();
        let mut maint_failures = 0u32;
        let mut deliver_at = (!self.pending.is_empty()).then(Instant::now);
        let mut deliver_failures = 0u32;
        let board = self.board.clone();
        loop {
            tokio::select! {
                () = async { board.as_ref().expect("checked").published().await }, if board.is_some() => {
                    if let Err(e) = self.reserve().await {
                        tracing::warn!(error = %e, "publishing a simple_avoid plan in UNIS failed; retried at the next poll");
                    }
                }
                batch = rx.recv() => {
                    let Some(batch) = batch else { break };
                    if self.watched.observe(&batch.probe, &batch.samples) {
                        self.watch_at = Some(Instant::now());
                    }
                    self.pending.push(Name::clone(&batch.probe), batch.samples);
                    if !self.session.registered() {
                        // Nothing can be sent before the registration:
                        // kept on disk meanwhile.
                        self.pending.hold_on_disk(false);
                    } else if deliver_at.is_none() {
                        deliver_at = Some(Instant::now() + COALESCE);
                    }
                }
                () = tokio::time::sleep_until(maint_at) => {
                    let was_registered = self.session.registered();
                    let maintained = self.maintain(&mut poll_due).await;
                    self.progress(maintained.is_err());
                    match maintained {
                        Ok(()) => {
                            maint_failures = 0;
                            self.publish();
                            if !was_registered && !self.pending.is_empty() {
                                deliver_at = Some(Instant::now());
                            }
                            if !was_registered {
                                self.watch_at = Some(Instant::now());
                            }
                            let renew = self.session.renew_at().map(Instant::from_std);
                            maint_at = renew.map_or(poll_due, |r| r.min(poll_due));
                        }
                        Err(e) => {
                            self.publish();
                            if let Some(b) = &self.board {
                                b.failed();
                            }
                            maint_failures += 1;
                            let wait = backoff(self.poll_interval(), self.max_backoff(), maint_failures);
                            if e.is_transient() {
                                tracing::warn!(error = %e, retry_in_s = wait.as_secs_f64(), "UNIS unreachable; measuring on, samples wait");
                            } else {
                                tracing::error!(error = %e, retry_in_s = wait.as_secs_f64(), "UNIS refused a request");
                            }
                            maint_at = Instant::now() + wait;
                        }
                    }
                }
                () = async { tokio::time::sleep_until(self.watch_at.unwrap_or_else(Instant::now)).await }, if self.watch_at.is_some() && self.session.registered() => {
                    self.write_watched().await;
                }
                () = async { tokio::time::sleep_until(deliver_at.unwrap_or_else(Instant::now)).await }, if deliver_at.is_some() => {
                    let delivered = self.deliver().await;
                    self.progress(matches!(delivered, Err(ref e) if !matches!(e, SinkError::NotRegistered)));
                    match delivered {
                        Ok(Delivered::All) => {
                            deliver_failures = 0;
                            deliver_at = None;
                        }
                        Ok(Delivered::SomeWait) => {
                            deliver_failures = 0;
                            deliver_at = Some(Instant::now() + NEXT_ROUND);
                        }
                        Err(SinkError::NotRegistered) => {
                            // Nothing was sent: what waits is kept on disk
                            // until UNIS answers.
                            self.pending.hold_on_disk(false);
                            deliver_at = None;
                        }
                        Err(e) => {
                            deliver_failures += 1;
                            let wait = backoff(DELIVERY_RETRY, DELIVERY_RETRY_MAX, deliver_failures);
                            tracing::warn!(error = %e, retry_in_s = wait.as_secs_f64(), "delivery failed; samples wait");
                            deliver_at = Some(Instant::now() + wait);
                        }
                    }
                }
            }
        }
        self.finish().await;
    }

    /// Writes the watched services' records that are due; a failure is
    /// retried with the UNIS poll's backoff.
    async fn write_watched(&mut self) {
        let node = self.session.node_href().unwrap_or_default().to_owned();
        let written = self.watched.sync(self.session.endpoint(), &node).await;
        self.progress(written.is_err());
        match written {
            Ok(()) => {
                self.watch_failures = 0;
                self.watch_at = self.watched.renew_at().map(Instant::from_std);
            }
            Err(e) => {
                self.watch_failures += 1;
                let wait = backoff(
                    self.poll_interval(),
                    self.max_backoff(),
                    self.watch_failures,
                );
                tracing::warn!(error = %e, retry_in_s = wait.as_secs_f64(), "writing a watched service's record to UNIS failed");
                self.watch_at = Some(Instant::now() + wait);
            }
        }
    }

    async fn finish(&mut self) {
        let attempt = async {
            if !self.session.registered() {
                self.session.register().await?;
                self.publish();
            }
            while let Delivered::SomeWait = self.deliver().await? {}
            Ok::<(), SinkError>(())
        };
        match tokio::time::timeout(FINAL_DELIVERY, attempt).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "final delivery failed"),
            Err(_) => tracing::warn!("final delivery timed out"),
        }
        let lost = self.pending.persist();
        if lost > 0 {
            tracing::error!(samples = lost, "samples lost: no spool to keep them in");
        }
    }

    /// Delivers everything pending, oldest first: the spool's segments,
    /// then memory. Samples of series whose MS collection is still to be
    /// created (beyond this round's [`CREATES_PER_ROUND`]) wait, durably
    /// and in order, while every other series' go out: returns whether some
    /// wait, so that the next round comes soon, after the UNIS poll had
    /// its turn.
    async fn deliver(&mut self) -> Result<Delivered, SinkError> {
        if !self.session.registered() {
            return Err(SinkError::NotRegistered);
        }
        let unis_before = self.session.requests();
        let ms_before: u64 = self.ms.values().map(Ms::requests).sum();
        let mut round = Round {
            creates: CREATES_PER_ROUND,
            until: std::time::Instant::now() + CREATING_PER_ROUND,
            waiting: HashSet::new(),
        };
        for path in self.pending.segments()? {
            let Some(chunk) = self.pending.segment(path)? else {
                continue;
            };
            match self.deliver_chunk(&chunk, &mut round).await {
                Ok(waiting) => {
                    self.pending.delivered_but(chunk, waiting)?;
                }
                Err(e) if e.is_transient() => {
                    self.pending.hold_on_disk(false);
                    return Err(e.into());
                }
                Err(e) => {
                    tracing::error!(error = %e, samples = chunk.samples(), "samples refused by UNIS or the MS: dropped");
                    self.pending.done(chunk)?;
                }
            }
        }
        let mut later = Vec::new();
        while let Some(chunk) = self.pending.take_memory() {
            match self.deliver_chunk(&chunk, &mut round).await {
                Ok(waiting) => later.extend(self.pending.delivered_but(chunk, waiting)?),
                Err(e) if e.is_transient() => {
                    self.pending.give_back(chunk);
                    self.pending.put_back(later);
                    // Durable before the next collection, and checked
                    // against the MS before it is sent again.
                    self.pending.hold_on_disk(true);
                    return Err(e.into());
                }
                Err(e) => {
                    tracing::error!(error = %e, samples = chunk.samples(), "samples refused by UNIS or the MS: dropped");
                }
            }
        }
        self.pending.put_back(later);
        if !round.waiting.is_empty() {
            tracing::debug!(
                series = round.waiting.len(),
                "samples of series whose MS collection is yet to be created wait for the next round"
            );
            return Ok(Delivered::SomeWait);
        }
        self.pending.delivered();
        if self.first_report {
            self.first_report = false;
            let ms: u64 = self.ms.values().map(Ms::requests).sum();
            tracing::info!(
                unis_requests = self.session.requests() - unis_before,
                ms_requests = ms - ms_before,
                unis_requests_since_start = self.session.requests(),
                "first report delivered"
            );
        }
        Ok(Delivered::All)
    }

    fn probe_config(&self, probe: &str) -> Option<&ProbeConfig> {
        self.session
            .config()
            .probes
            .iter()
            .find(|p| p.name == probe)
    }

    /// Sends one chunk; returns its samples that wait for their series'
    /// MS collection.
    async fn deliver_chunk(
        &mut self,
        chunk: &Chunk,
        round: &mut Round,
    ) -> Result<Vec<(Name, Vec<Sample>)>, UnisError> {
        let mut unknown: HashSet<SeriesKey> = HashSet::new();
        for (probe, samples) in &chunk.batches {
            for s in samples {
                let key = (
                    Name::clone(probe),
                    Name::clone(&s.subject),
                    Name::clone(&s.event_type),
                );
                if self.session.series(&key).is_none() {
                    unknown.insert(key);
                }
            }
        }
        if !unknown.is_empty() {
            self.session.resolve(&unknown).await?;
        }
        let unis_url = self
            .session
            .config()
            .settings
            .unis_url
            .clone()
            .unwrap_or_default();
        let mut per_ms: HashMap<String, ToMs> = HashMap::new();
        let mut unplaced = 0usize;
        let mut original = super::original_file::Targets::new();
        for (probe, samples) in &chunk.batches {
            let cfg = self.probe_config(probe);
            let original_file = cfg
                .filter(|c| c.data_file_format == crate::config::DataFileFormat::Original)
                .and_then(|c| c.data_file.clone());
            let ms_url = cfg
                .and_then(|c| c.ms_url.clone())
                .unwrap_or_else(|| unis_url.clone());
            let (size, ttl) = cfg.map_or((10_000_000, 1_500_000), |c| {
                (c.collection_size, c.collection_ttl)
            });
            let entry = per_ms.entry(ms_url).or_default();
            for s in samples {
                let key = (
                    Name::clone(probe),
                    Name::clone(&s.subject),
                    Name::clone(&s.event_type),
                );
                let Some(series) = self.session.series(&key) else {
                    unplaced += 1;
                    continue;
                };
                let data = entry.data.entry(series.mid.clone()).or_insert_with(|| {
                    entry.collections.push((
                        series.mid.clone(),
                        series.href.clone(),
                        size,
                        ttl,
                        series.fresh,
                    ));
                    Vec::new()
                });
                data.push(datum(s));
                if let Some(path) = &original_file {
                    original
                        .entry(series.mid.clone())
                        .or_insert_with(|| (path.clone(), Name::clone(&s.event_type)));
                }
            }
        }
        if unplaced > 0 {
            tracing::warn!(
                samples = unplaced,
                "samples of probes without a measurement dropped"
            );
        }
        for (url, ToMs { collections, data }) in per_ms {
            if data.is_empty() {
                continue;
            }
            let ms = match self.ms.get_mut(&url) {
                Some(ms) => ms,
                None => {
                    let endpoint = Endpoint::new(&url, self.http.clone())?;
                    self.ms.entry(url.clone()).or_insert(Ms::new(endpoint))
                }
            };
            let mut data = data;
            data.retain(|mid, _| !round.waiting.contains(mid));
            // What has a collection goes out first: creating the others
            // may take a while.
            let (ready, later): (HashMap<String, Vec<Json>>, HashMap<String, Vec<Json>>) =
                data.into_iter().partition(|(mid, _)| ms.is_ready(mid));
            let lines = super::original_file::lines(&original, &ready);
            post(ms, &self.pending, chunk, ready).await?;
            for (path, text) in lines {
                self.original_files.write(&path, &text);
            }
            if later.is_empty() {
                continue;
            }
            let wanted: Vec<Collection<'_>> = collections
                .iter()
                .filter(|(mid, ..)| later.contains_key(mid))
                .map(|(mid, href, size, ttl, fresh)| Collection {
                    mid,
                    metadata_url: href,
                    size: *size,
                    ttl: *ttl,
                    fresh: *fresh,
                })
                .collect();
            let waiting = ms.ensure(&wanted, &mut round.creates, round.until).await?;
            round.waiting.extend(waiting);
            let mut later = later;
            later.retain(|mid, _| !round.waiting.contains(mid));
            let lines = super::original_file::lines(&original, &later);
            post(ms, &self.pending, chunk, later).await?;
            for (path, text) in lines {
                self.original_files.write(&path, &text);
            }
        }
        if round.waiting.is_empty() {
            return Ok(Vec::new());
        }
        let mut waiting = Vec::new();
        for (probe, samples) in &chunk.batches {
            let wait: Vec<Sample> = samples
                .iter()
                .filter(|s| {
                    let key = (
                        Name::clone(probe),
                        Name::clone(&s.subject),
                        Name::clone(&s.event_type),
                    );
                    self.session
                        .series(&key)
                        .is_some_and(|series| round.waiting.contains(&series.mid))
                })
                .cloned()
                .collect();
            if !wait.is_empty() {
                waiting.push((Name::clone(probe), wait));
            }
        }
        Ok(waiting)
    }
}

/// Sends `data` (points by mid) to `ms`, without what it holds already
/// when the chunk was sent before.
async fn post(
    ms: &Ms,
    pending: &Pending,
    chunk: &Chunk,
    mut data: HashMap<String, Vec<Json>>,
) -> Result<(), UnisError> {
    if chunk.uncertain() {
        drop_held(ms, &mut data).await?;
    }
    let body: Vec<Json> = data
        .into_iter()
        .filter(|(_, points)| !points.is_empty())
        .map(|(mid, points)| json!({ "mid": mid, "data": points }))
        .collect();
    if body.is_empty() {
        return Ok(());
    }
    // From here the MS may receive it, whatever blippd learns.
    if let Err(e) = pending.sending(chunk) {
        tracing::warn!(error = %e, "cannot note that spooled samples are being sent: were blippd killed now, they could be sent twice");
    }
    ms.post_data(&Json::Array(body)).await
}

/// Leaves out of `data` the points the MS holds already: the chunk was
/// sent before, and its answer never came (blippd was killed, or the
/// connection broke), so some or all of it may have arrived. A series has
/// one point per timestamp, so a timestamp the MS holds for a mid is that
/// point.
async fn drop_held(ms: &Ms, data: &mut HashMap<String, Vec<Json>>) -> Result<(), UnisError> {
    let mut dropped = 0usize;
    for (mid, points) in data.iter_mut() {
        let ts = |d: &Json| d.get("ts").and_then(Json::as_u64).unwrap_or(0);
        let (Some(first), Some(last)) = (points.iter().map(ts).min(), points.iter().map(ts).max())
        else {
            continue;
        };
        let held = ms.held(mid, first, last, points.len()).await?;
        let before = points.len();
        points.retain(|d| !held.contains(&ts(d)));
        dropped += before - points.len();
    }
    if dropped > 0 {
        tracing::info!(
            samples = dropped,
            "samples sent before and already in the MS are not sent again"
        );
    }
    Ok(())
}

/// MS collections created per delivery round at most: a burst of new
/// series is created over several rounds, between which the UNIS poll and
/// new reports have their turn (the data of series that have a collection
/// goes out before any is created).
const CREATES_PER_ROUND: usize = 64;
/// And for at most this long, however slow the MS is.
const CREATING_PER_ROUND: Duration = Duration::from_millis(500);

/// One delivery round's state across its chunks.
struct Round {
    /// Collections it may still create.
    creates: usize,
    /// When it stops creating collections.
    until: std::time::Instant,
    /// mids whose collection does not exist yet: their samples wait, all
    /// of them in this round, so that a series' points go out in order.
    waiting: HashSet<String>,
}

/// How a delivery round ended.
enum Delivered {
    /// Everything pending went out.
    All,
    /// Some series wait for their MS collection.
    SomeWait,
}

/// What one delivery step sends to one MS.
#[derive(Default)]
struct ToMs {
    /// (mid, metadata URL, collection size, ttl, metadata created by this
    /// blippd) of each mid in `data`.
    collections: Vec<(String, String, u64, u64, bool)>,
    /// Data points by mid.
    data: HashMap<String, Vec<Json>>,
}

/// A sample as an MS datum: `ts` in µs, `value`, and `reset` when a
/// counter restarted.
fn datum(s: &Sample) -> Json {
    let value = match &s.value {
        Value::Int(i) => json!(i),
        Value::Float(f) => json!(f),
        Value::Text(t) => json!(t.as_ref()),
    };
    if s.reset {
        json!({ "ts": s.ts.0, "value": value, "reset": true })
    } else {
        json!({ "ts": s.ts.0, "value": value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Source, Timestamp};

    #[test]
    fn backoff_doubles_up_to_the_limit() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(5), s(60), 1), s(5));
        assert_eq!(backoff(s(5), s(60), 2), s(10));
        assert_eq!(backoff(s(5), s(60), 4), s(40));
        assert_eq!(backoff(s(5), s(60), 5), s(60));
        assert_eq!(backoff(s(5), s(60), 500), s(60));
    }

    #[test]
    fn datum_shape() {
        let mut s = Sample::new(
            Timestamp(7),
            &Name::from("node"),
            &Name::from("e"),
            Value::Int(7),
            Source::Proc,
        );
        assert_eq!(datum(&s), json!({"ts": 7, "value": 7}));
        s.reset = true;
        s.value = Value::Float(0.5);
        assert_eq!(datum(&s), json!({"ts": 7, "value": 0.5, "reset": true}));
    }
}
