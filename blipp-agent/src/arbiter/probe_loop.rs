//! One probe's task: wait for its next instant, collect, report, until its
//! schedule ends or the supervisor stops it; then flush what is pending.
//! Everything the task touches travels with it in one value, so the
//! supervisor keeps only the handle and the stop switch.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::alarm::Alarms;
use crate::config::ProbeConfig;
use crate::probe::cost::CostBoard;
use crate::probe::{Probe, ProbeError};
use crate::report::Batch;
use crate::report::collector::Collector;
use crate::report::prometheus::store::STORE;
use crate::sample::{Name, Sample, Timestamp};
use crate::schedule::avoid::Reservations;
use crate::schedule::{Instants, backoff};
use crate::status::ProbeHealth;

/// A built probe with everything its task is connected to.
pub(super) struct ProbeLoop {
    /// Its configuration: its name and schedule.
    pub(super) config: ProbeConfig,
    pub(super) probe: Box<dyn Probe>,
    /// Batches its samples by its `reporting_params`.
    pub(super) collector: Collector,
    /// Where the schedule starts when it names no start of its own.
    pub(super) start: Timestamp,
    /// To the reporter.
    pub(super) tx: mpsc::Sender<Batch>,
    /// Set when the probe must stop.
    pub(super) stop: watch::Receiver<bool>,
    /// Collect once, now, and end.
    pub(super) once: bool,
    /// The agent's own cost, which the `agent` probe publishes.
    pub(super) costs: CostBoard,
    /// The probe's record for `status` and `tail`.
    pub(super) health: Arc<ProbeHealth>,
    /// Where it waits for its instants.
    pub(super) alarms: Alarms,
    /// For `simple_avoid`: the other measurements' slots.
    pub(super) reservations: Box<dyn Reservations>,
}

impl ProbeLoop {
    /// Runs until the schedule ends, the probe is stopped, its collection
    /// panics or the reporter is gone.
    pub(super) async fn run(self) {
        let ProbeLoop {
            config,
            mut probe,
            mut collector,
            start,
            tx,
            mut stop,
            once,
            costs,
            health,
            alarms,
            reservations,
        } = self;
        // `next_after` takes an instant that is less than an interval late,
        // so the first one (the start) is collected even though the clock
        // has moved on since.
        let mut instants: Instants =
            config
                .schedule
                .instants_with(start, fastrand::Rng::new(), reservations);
        let mut last_print = None;
        let cost_subject = Name::from(format!("probe:{}", config.name));
        // Dropped when the task ends, however it ends: the probe's series
        // are no longer served.
        let scrape = STORE.get().map(|store| store.register(&config.name));
        loop {
            let now = Timestamp::now();
            let at = if once {
                Some(now)
            } else {
                instants.next_after(now)
            };
            let Some(at) = at else { break };
            tokio::select! {
                () = alarms.until(at) => {}
                _ = stop.changed() => break,
            }
            if !once && !instants.may_run(at) {
                continue;
            }
            let ts = Timestamp::now();
            let started = std::time::Instant::now();
            let before = collector.buffer().len();
            let result = if probe.blocks() {
                match collect_blocking(probe, ts, collector.buffer()).await {
                    Some((back, result)) => {
                        probe = back;
                        result
                    }
                    None => break,
                }
            } else {
                probe.collect(ts, collector.buffer())
            };
            if instants.observes() {
                // A failed collection counts as a change: something
                // happened.
                let print = result
                    .is_ok()
                    .then(|| backoff::fingerprint(&collector.buffer()[before..]));
                instants.observe(print.is_none() || print != last_print);
                last_print = print;
            }
            if let Err(e) = &result {
                tracing::warn!(probe = %config.name, error = %e, "collection failed");
            }
            let took = started.elapsed();
            tracing::trace!(probe = %config.name, took_us = took.as_micros(), "collected");
            health.collected(
                ts,
                took,
                &collector.buffer()[before..],
                result.as_ref().err().map(|e| e as &dyn std::error::Error),
            );
            costs.record(&cost_subject, took.as_secs_f64());
            if let Some(scrape) = &scrape {
                scrape.collected(ts, &collector.buffer()[before..], result.is_ok());
            }
            for batch in collector.collected(ts).into_iter().flatten() {
                if tx.send(batch).await.is_err() {
                    return;
                }
            }
            if once || *stop.borrow() {
                break;
            }
        }
        for batch in collector.take().into_iter().flatten() {
            let _ = tx.send(batch).await;
        }
    }
}

/// One collection of a probe that [`blocks`](crate::probe::Probe::blocks),
/// on the blocking thread pool. The probe and the buffer travel to that
/// thread and back (the buffer keeps its allocation). `None` when the
/// collection panicked: the probe is gone, and its task ends.
async fn collect_blocking(
    mut probe: Box<dyn Probe>,
    ts: Timestamp,
    buffer: &mut Vec<Sample>,
) -> Option<(Box<dyn Probe>, Result<(), ProbeError>)> {
    let mut samples = std::mem::take(buffer);
    let joined = tokio::task::spawn_blocking(move || {
        let result = probe.collect(ts, &mut samples);
        (probe, samples, result)
    })
    .await;
    match joined {
        Ok((probe, samples, result)) => {
            *buffer = samples;
            Some((probe, result))
        }
        Err(e) => {
            tracing::error!(error = %e, "probe collection panicked; the probe stops");
            None
        }
    }
}
