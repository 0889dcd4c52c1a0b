//! The probes' tasks: the supervisor starts, stops and restarts them as a
//! [`Plan`](super::reconcile::Plan) says, and answers what `status` asks
//! about each. Building goes through the run's one [`Builder`], whose
//! eBPF object outlives every probe.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::alarm::Alarms;
use super::builder::Builder;
use super::probe_loop::ProbeLoop;
use super::reconcile::{reconcile, wanted};
use super::retry::Retries;
use super::start::Prebuilt;
use super::{RunLength, RunOptions};
use crate::config::{Config, ProbeConfig, Status};
use crate::control::protocol::{Changes, Failure};
use crate::probe::{Built, Fault};
use crate::report::collector::{Collector, Reporting};
use crate::report::{Batch, Route};
use crate::sample::{Source, Timestamp};
use crate::schedule::ScheduleSpec;
use crate::schedule::avoid::{NoReservations, Reservations};
use crate::status::{ProbeHealth, ProbeReport, ProbeState};
use crate::unis::reservations::{Board, resource_refs};

/// The supervisor's handle on one probe's task.
pub(super) struct Task {
    /// Unique per spawn: a restarted probe is a new task.
    id: u64,
    pub(super) config: ProbeConfig,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
    /// Its schedule ended (it said so on the `done` channel).
    pub(super) finished: bool,
    /// Where its numbers come from.
    source: Source,
}

/// Starts, stops and restarts probe tasks.
pub(super) struct Supervisor {
    pub(super) builder: Builder,
    /// Probes built before the run (by [`prepare`](super::prepare)), used
    /// when the configuration still wants them as they are, and their
    /// faults, which stand while it does.
    pub(super) prebuilt: Vec<Prebuilt>,
    pub(super) tasks: BTreeMap<String, Task>,
    tx: mpsc::Sender<Batch>,
    done: mpsc::UnboundedSender<u64>,
    spawned: u64,
    pub(super) options: RunOptions,
    unis: bool,
    /// The record of every probe that ran, by name (kept after it stops,
    /// so that `status` and `tail` show its last collections).
    pub(super) health: BTreeMap<String, Arc<ProbeHealth>>,
    /// Probes the configuration wants that could not be built, as they
    /// were configured, and why: their configuration is at fault, or (in a
    /// `--once` run, which has no later) their environment.
    pub(super) failed: BTreeMap<String, (ProbeConfig, String)>,
    /// Probes whose environment failed, waiting to be built again.
    pub(super) retries: Retries,
    /// The one timer every probe waits on.
    alarms: Alarms,
    /// Where `simple_avoid` probes with shared resources find the others'
    /// slots.
    reservations: Option<Board>,
}

impl Supervisor {
    /// A supervisor with no task yet, whose probes send their batches on
    /// `tx` and their id on `done` when their schedule ends.
    pub(super) fn new(
        builder: Builder,
        prebuilt: Vec<Prebuilt>,
        tx: mpsc::Sender<Batch>,
        done: mpsc::UnboundedSender<u64>,
        options: RunOptions,
        unis: bool,
        alarms: Alarms,
    ) -> Self {
        Self {
            builder,
            prebuilt,
            tasks: BTreeMap::new(),
            tx,
            done,
            spawned: 0,
            options,
            unis,
            health: BTreeMap::new(),
            failed: BTreeMap::new(),
            retries: Retries::default(),
            alarms,
            reservations: None,
        }
    }

    /// `simple_avoid` probes that share resources plan around the slots
    /// on `board`.
    pub(super) fn with_reservations(mut self, board: Option<Board>) -> Self {
        self.reservations = board;
        self
    }

    /// What `config`'s schedule plans around: the board, for a
    /// `simple_avoid` probe with `resources` refs; else nothing.
    fn reservations_of(&self, config: &ProbeConfig) -> Box<dyn Reservations> {
        let refs = resource_refs(&config.raw);
        match &self.reservations {
            Some(board)
                if matches!(config.schedule, ScheduleSpec::Avoid(_)) && !refs.is_empty() =>
            {
                Box::new(board.join(&config.name, refs))
            }
            _ => Box::new(NoReservations),
        }
    }

    /// Builds `p`, or takes it as start-up built it.
    pub(super) fn build(&mut self, p: &ProbeConfig) -> Result<Built, Fault> {
        if let Some(i) = self.prebuilt.iter().position(|b| b.config == *p) {
            return self.prebuilt.swap_remove(i).built;
        }
        self.builder.build(p, "configuration")
    }

    /// Starts `built`'s task. Probes started together get the same
    /// `start`, so that those on the same schedule share every instant,
    /// and one wakeup.
    pub(super) fn spawn(&mut self, config: ProbeConfig, built: Built, start: Timestamp) {
        tracing::info!(probe = %config.name, module = %config.module, source = built.source.as_str(), "probe started");
        // Samples with nowhere else to go are printed, so that the default
        // configuration (no server, no file) shows them.
        let elsewhere = self.unis || config.ms_url.is_some() || config.data_file.is_some();
        let route = Route {
            stdout: self.options.stdout || !elsewhere,
            data_file: config.data_file.clone(),
            unis: self.unis,
            data_file_format: config.data_file_format,
        };
        let reporting = Reporting {
            every: config.reporting_params.max(1),
            interval: config
                .reporting_interval
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            max_samples: config.reporting_max_samples,
        };
        let collector = Collector::with(&config.name, route, reporting, config.aggregate.clone());
        let (stop, stop_rx) = watch::channel(false);
        let done = self.done.clone();
        self.spawned += 1;
        let id = self.spawned;
        let health = ProbeHealth::new();
        self.health.insert(config.name.clone(), Arc::clone(&health));
        self.failed.remove(&config.name);
        self.retries.remove(&config.name);
        let task = ProbeLoop {
            config: config.clone(),
            probe: built.probe,
            collector,
            start,
            tx: self.tx.clone(),
            stop: stop_rx,
            once: self.options.length == RunLength::Once,
            costs: self.builder.costs().clone(),
            health,
            alarms: self.alarms.clone(),
            reservations: self.reservations_of(&config),
        };
        let handle = tokio::spawn(async move {
            task.run().await;
            let _ = done.send(id);
        });
        self.tasks.insert(
            config.name.clone(),
            Task {
                id,
                config,
                stop,
                handle,
                finished: false,
                source: built.source,
            },
        );
    }

    /// Starts every probe `config` wants, saying which are OFF. The
    /// local configuration's probes were built by
    /// [`prepare`](super::prepare); one that cannot be built (there, or
    /// now because UNIS changed or added it) is logged once and left out,
    /// or tried again later when its environment failed.
    pub(super) async fn start_all(&mut self, config: &Config) {
        for p in &config.probes {
            if p.status == Status::Off || config.status == Status::Off {
                tracing::info!(probe = %p.name, "status OFF, not started");
            }
        }
        // Not strict: failures are logged and kept for `status`.
        let _ = self.apply(config, false).await;
    }

    /// Stops a probe, flushing its pending samples.
    async fn stop(&mut self, name: &str) {
        if let Some(task) = self.tasks.remove(name) {
            let _ = task.stop.send(true);
            if let Err(e) = task.handle.await {
                tracing::error!(probe = name, error = %e, "probe task failed");
            }
        }
    }

    /// Moves to `config`: stops the probes it no longer wants, restarts
    /// those whose configuration changed, starts new ones. The new probes
    /// are built before any is stopped; a probe known not to build as it
    /// is configured is left to its fault (or its next attempt). `strict`
    /// (a change through the control socket) refuses the whole change
    /// when a probe it builds cannot be built, and nothing changes;
    /// otherwise (UNIS) that probe is logged and left out, and the others
    /// run on.
    pub(super) async fn apply(
        &mut self,
        config: &Config,
        strict: bool,
    ) -> Result<Changes, Failure> {
        let plan = reconcile(
            self.tasks
                .iter()
                .map(|(name, t)| (name.as_str(), &t.config)),
            config,
        );
        let mut built = Vec::new();
        let mut failed = Vec::new();
        for p in plan.start {
            if self.known_fault(p) {
                continue;
            }
            match self.build(p) {
                Ok(b) => built.push((p, b)),
                Err(fault) => failed.push((p, fault)),
            }
        }
        if strict && let Some((p, fault)) = failed.first() {
            return Err(failure(p, fault));
        }
        let mut changes = Changes::default();
        let names: Vec<String> = self.tasks.keys().cloned().collect();
        for name in names {
            if plan.restart.contains(&name) {
                self.stop(&name).await;
                tracing::info!(probe = %name, "probe configuration changed: restarting it");
                changes.restarted.push(name);
            } else if plan.stop.contains(&name) {
                self.stop(&name).await;
                tracing::info!(probe = %name, "probe stopped by the configuration");
                changes.stopped.push(name);
            }
        }
        let start = Timestamp::now();
        for (p, b) in built {
            if !changes.restarted.contains(&p.name) {
                changes.started.push(p.name.clone());
            }
            self.spawn(p.clone(), b, start);
        }
        let wanted = wanted(config);
        self.failed
            .retain(|name, _| wanted.contains_key(name.as_str()));
        self.retries
            .retain(|p| wanted.get(p.name.as_str()).is_some_and(|w| **w == *p));
        changes.failed = failed
            .into_iter()
            .map(|(p, fault)| self.fault(p, fault))
            .collect();
        self.health
            .retain(|name, _| config.probes.iter().any(|p| p.name == *name));
        self.publish_failed();
        Ok(changes)
    }

    /// Builds probe `name` again from its configuration and replaces its
    /// task (its pending samples are flushed first).
    pub(super) async fn restart(&mut self, name: &str) -> Result<(), Failure> {
        let Some(config) = self.tasks.get(name).map(|t| t.config.clone()) else {
            return Err(Failure {
                probe: name.to_owned(),
                error: "not running".to_owned(),
            });
        };
        let built = self.build(&config).map_err(|f| failure(&config, &f))?;
        self.stop(name).await;
        tracing::info!(probe = %name, "probe restarted through the control socket");
        self.spawn(config, built, Timestamp::now());
        Ok(())
    }

    /// Every probe of `config`, as `blippcmd status` shows it.
    pub(super) fn report(&self, config: &Config) -> Vec<ProbeReport> {
        config
            .probes
            .iter()
            .map(|p| {
                let state = if config.status == Status::Off || p.status == Status::Off {
                    ProbeState::Off
                } else {
                    match self.tasks.get(&p.name) {
                        Some(t) if t.finished => ProbeState::Finished,
                        Some(_) => ProbeState::Running,
                        None if self.retries.get(&p.name).is_some() => ProbeState::Retrying,
                        None => ProbeState::Failed,
                    }
                };
                let schedule = serde_json::json!({
                    "collection_schedule": p.raw.get("collection_schedule"),
                    "schedule_params": p.raw.get("schedule_params"),
                });
                let mut r = ProbeReport::new(&p.name, &p.module, state, p.mode, schedule);
                r.source = self.tasks.get(&p.name).map(|t| t.source);
                if let Some(h) = self.health.get(&p.name) {
                    h.fill(&mut r);
                }
                if r.state == ProbeState::Failed
                    && let Some(e) = self.failed.get(&p.name)
                {
                    r.last_error = Some(e.1.clone());
                }
                if r.state == ProbeState::Retrying
                    && let Some(retry) = self.retries.get(&p.name)
                {
                    r.last_error = Some(retry.error.clone());
                    r.attempts = retry.attempts;
                    let wait = retry
                        .at
                        .saturating_duration_since(tokio::time::Instant::now());
                    r.next_attempt = Some(Timestamp::now().0 + wait.as_micros() as u64);
                }
                r
            })
            .collect()
    }

    /// Stops every probe, flushing their pending samples.
    pub(super) async fn stop_all(&mut self) {
        let names: Vec<String> = self.tasks.keys().cloned().collect();
        for name in names {
            self.stop(&name).await;
        }
    }

    /// Marks the task `id` finished.
    pub(super) fn finished(&mut self, id: u64) {
        if let Some(t) = self.tasks.values_mut().find(|t| t.id == id) {
            t.finished = true;
        }
    }

    /// Whether every task has finished its schedule (or none runs) and
    /// no probe waits to be built again.
    pub(super) fn all_finished(&self) -> bool {
        self.tasks.values().all(|t| t.finished) && self.retries.is_empty()
    }
}

/// What a control-socket client is told about `fault`, which building `p`
/// gave.
pub(super) fn failure(p: &ProbeConfig, fault: &Fault) -> Failure {
    Failure {
        probe: p.name.clone(),
        error: match fault {
            Fault::Config(e) => e.to_string(),
            Fault::Environment { error, .. } => error.to_string(),
        },
    }
}
