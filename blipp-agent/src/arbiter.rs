//! Runs the configured probes: builds each one (choosing eBPF or /proc),
//! drives it along its schedule, and hands its batches to the reporter.
//! Stopping flushes every probe's pending samples before returning.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::config::{Config, Mode, ProbeConfig, Status};
use crate::probe::cost::CostBoard;
use crate::probe::{self, BuildContext, Built, Fallback, Probe, ProbeError};
use crate::report::collector::Collector;
use crate::report::{Batch, Reporter, Route};
use crate::sample::{Name, Sample, Timestamp};
use crate::schedule::{Instants, backoff};
use crate::source::ebpf::{KernelAccess, caps, klog};

/// Why the agent could not start its probes.
#[derive(Debug, thiserror::Error)]
pub enum ArbiterError {
    /// A probe could not be built.
    #[error("probe {probe}: {source}")]
    Probe {
        /// The probe's name.
        probe: String,
        /// Why.
        #[source]
        source: ProbeError,
    },
}

/// How long to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RunLength {
    /// Until the shutdown future completes.
    #[default]
    UntilStopped,
    /// Collect every probe once, report, return.
    Once,
    /// Run this long (or until stopped), then flush and return.
    For(Duration),
}

/// Options of a run that do not come from the configuration file.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// How long.
    pub length: RunLength,
    /// Print samples on stdout even when they also go elsewhere.
    pub stdout: bool,
}

/// What one probe ended up as, for the start-up log and `blippcmd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeStatus {
    /// The probe's name.
    pub name: String,
    /// Its module.
    pub module: String,
    /// `ebpf` or `proc`.
    pub source: &'static str,
}

struct Running {
    config: ProbeConfig,
    built: Built,
}

fn wants_ebpf(config: &Config) -> bool {
    config.probes.iter().any(|p| {
        p.status == Status::On
            && p.mode != Mode::Proc
            && probe::spec(&p.module).is_some_and(|s| s.fallback == Fallback::Proc)
    })
}

/// The probes of a configuration, built and ready to run, with the eBPF
/// object whose programs they use (it keeps them attached).
pub struct Prepared {
    kernel: KernelAccess,
    running: Vec<Running>,
    costs: CostBoard,
}

/// Builds the probes of `config`: loads the eBPF object when a probe may
/// use it and attaches the programs each probe asks for. Then, when
/// `drop_capabilities` is set and programs were attached, gives up the
/// capabilities that only loading needed (see
/// [`caps`](crate::source::ebpf::caps)). Capabilities are per thread:
/// blippd calls this before it starts any other thread.
pub fn prepare(config: &Config, drop_capabilities: bool) -> Result<Prepared, ArbiterError> {
    let costs = CostBoard::default();
    let (mut kernel, running) = build_all(config, &costs)?;
    if let KernelAccess::Loaded(k) = &mut kernel {
        k.loading_done();
        if drop_capabilities && !k.attached().is_empty() {
            match caps::drop_loading_capabilities(|| k.maps_readable()) {
                Ok(caps::Dropped::All) => tracing::info!(
                    dropped = ?caps::DROPPED.map(|(_, name)| name),
                    "eBPF programs attached; capabilities only loading needed are dropped"
                ),
                Ok(caps::Dropped::AllButBpf) => tracing::info!(
                    dropped = ?caps::DROPPED.map(|(_, name)| name),
                    kept = "CAP_BPF",
                    "eBPF programs attached; capabilities only loading needed are dropped, but this kernel wants CAP_BPF to read maps"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "could not drop capabilities after loading eBPF programs")
                }
            }
        }
    }
    Ok(Prepared {
        kernel,
        running,
        costs,
    })
}

/// Builds the probes of `config`. The returned kernel handle keeps the eBPF
/// programs attached and must outlive the probes.
fn build_all(
    config: &Config,
    costs: &CostBoard,
) -> Result<(KernelAccess, Vec<Running>), ArbiterError> {
    let mut kernel = if wants_ebpf(config) {
        KernelAccess::open()
    } else {
        KernelAccess::Unavailable("no probe asks for eBPF".to_owned())
    };
    if let KernelAccess::Unavailable(why) = &kernel {
        tracing::debug!(reason = %why, "eBPF object not loaded");
    }
    let mut ctx = BuildContext {
        kernel: &mut kernel,
        node: Name::from("node"),
        costs: costs.clone(),
    };
    let mut running = Vec::new();
    for p in &config.probes {
        if p.status == Status::Off || config.status == Status::Off {
            tracing::info!(probe = %p.name, "status OFF, not started");
            continue;
        }
        let built = probe::build(p, &mut ctx).map_err(|source| ArbiterError::Probe {
            probe: p.name.clone(),
            source,
        })?;
        tracing::info!(probe = %p.name, module = %p.module, source = built.source.as_str(), "probe started");
        running.push(Running {
            config: p.clone(),
            built,
        });
    }
    Ok((kernel, running))
}

/// Runs the probes of `config` until `length` is reached or `shutdown`
/// completes, then flushes everything and returns what ran.
pub async fn run(
    config: &Config,
    options: RunOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Vec<ProbeStatus>, ArbiterError> {
    run_prepared(config, prepare(config, false)?, options, shutdown).await
}

/// [`run`] with probes built by [`prepare`].
pub async fn run_prepared(
    config: &Config,
    prepared: Prepared,
    options: RunOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Vec<ProbeStatus>, ArbiterError> {
    let Prepared {
        mut kernel,
        running,
        costs,
    } = prepared;
    if let KernelAccess::Loaded(k) = &mut kernel
        && let Some(logger) = k.take_logger()
        && let Err(e) = klog::spawn(logger)
    {
        tracing::warn!(error = %e, "the eBPF programs' log records cannot be read");
    }
    let statuses: Vec<ProbeStatus> = running
        .iter()
        .map(|r| ProbeStatus {
            name: r.config.name.clone(),
            module: r.config.module.clone(),
            source: r.built.source.as_str(),
        })
        .collect();
    let (reporter, tx) = Reporter::new(64);
    let reporter = tokio::spawn(reporter.run());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for r in running {
        // Samples with nowhere else to go are printed, so that the default
        // configuration (no server, no file) shows them.
        let elsewhere = config.settings.unis_url.is_some()
            || r.config.ms_url.is_some()
            || r.config.data_file.is_some();
        let route = Route {
            stdout: options.stdout || !elsewhere,
            data_file: r.config.data_file.clone(),
        };
        let collector = Collector::new(&r.config.name, route, r.config.reporting_params);
        let tx = tx.clone();
        let stop = stop_rx.clone();
        let once = options.length == RunLength::Once;
        let costs = costs.clone();
        tasks.push(tokio::spawn(drive(r, collector, tx, stop, once, costs)));
    }
    drop(tx);
    let all_done = async {
        for t in &mut tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "probe task failed");
            }
        }
    };
    tokio::pin!(all_done);
    let limit = async {
        match options.length {
            RunLength::For(d) => tokio::time::sleep(d).await,
            _ => std::future::pending().await,
        }
    };
    let finished = tokio::select! {
        () = &mut all_done => true,
        () = limit => false,
        () = shutdown => {
            tracing::info!("stopping");
            false
        }
    };
    let _ = stop_tx.send(true);
    if !finished {
        all_done.await;
    }
    if let Err(e) = reporter.await {
        tracing::error!(error = %e, "reporter task failed");
    }
    drop(kernel);
    Ok(statuses)
}

/// One probe's life: wait for the next instant, collect, report.
async fn drive(
    mut r: Running,
    mut collector: Collector,
    tx: mpsc::Sender<Batch>,
    mut stop: watch::Receiver<bool>,
    once: bool,
    costs: CostBoard,
) {
    // `next_after` takes an instant that is less than an interval late, so
    // the first one (the start) is collected even though the clock has
    // moved on since.
    let mut instants: Instants = r.config.schedule.instants(Timestamp::now());
    let mut last_print = None;
    let cost_subject = Name::from(format!("probe:{}", r.config.name));
    loop {
        let now = Timestamp::now();
        let at = if once {
            Some(now)
        } else {
            instants.next_after(now)
        };
        let Some(at) = at else { break };
        let wait = Duration::from_micros(at.0.saturating_sub(now.0));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
        let ts = Timestamp::now();
        let started = std::time::Instant::now();
        let before = collector.buffer().len();
        let result = if r.built.probe.blocks() {
            match collect_blocking(r.built.probe, ts, collector.buffer()).await {
                Some((probe, result)) => {
                    r.built.probe = probe;
                    result
                }
                None => break,
            }
        } else {
            r.built.probe.collect(ts, collector.buffer())
        };
        if instants.observes() {
            // A failed collection counts as a change: something happened.
            let print = result
                .is_ok()
                .then(|| backoff::fingerprint(&collector.buffer()[before..]));
            instants.observe(print.is_none() || print != last_print);
            last_print = print;
        }
        if let Err(e) = result {
            tracing::warn!(probe = %r.config.name, error = %e, "collection failed");
        }
        let took = started.elapsed();
        tracing::trace!(probe = %r.config.name, took_us = took.as_micros(), "collected");
        // The agent's own cost, which the `agent` probe publishes.
        costs.record(&cost_subject, took.as_secs_f64());
        if let Some(batch) = collector.collected()
            && tx.send(batch).await.is_err()
        {
            return;
        }
        if once || *stop.borrow() {
            break;
        }
    }
    if let Some(batch) = collector.take() {
        let _ = tx.send(batch).await;
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
