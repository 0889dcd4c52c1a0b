//! Runs the configured probes: builds each one (on eBPF where it has a
//! variant that this kernel allows, else from /proc and /sys, a command, a
//! log file or the agent itself), drives it along its schedule, and hands
//! its batches to the reporter. A new configuration (from UNIS, an edit or
//! a reload through the control socket) restarts only the probes whose
//! configuration changed; service status OFF stops them all, ON starts
//! them again. Stopping flushes every probe's pending samples.
//!
//! `start` builds the local configuration's probes before any thread
//! starts, `reconcile` plans each change of configuration, the
//! `supervisor` carries it out, `probe_loop` is one probe's task, and
//! `steer` answers the control socket.

mod alarm;
mod builder;
mod faulty;
mod probe_loop;
mod reconcile;
mod retry;
mod start;
mod steer;
mod supervisor;

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::config::{Config, LocalSource};
use crate::control::Command;
use crate::report::{Batch, Reporter};
use crate::source::ebpf::{KernelAccess, klog};
use crate::unis::reservations::Board;
use alarm::Alarms;
pub use start::{Prepared, Start, prepare};
use supervisor::Supervisor;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A run that ends by itself (`--once`, `--duration`) could not write
    /// everything it collected to stdout or a data file (each failure was
    /// logged when it happened).
    #[error("{failures} write(s) to stdout or a data file failed; see the log")]
    Undelivered {
        /// Failed writes and opens of data files.
        failures: u64,
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

/// Where the run's samples and configuration changes come from and go,
/// besides stdout and data files.
#[derive(Debug, Default)]
pub struct Links {
    /// New configurations (from UNIS): applied as they come, restarting
    /// only the probes whose configuration changed.
    pub updates: Option<watch::Receiver<Config>>,
    /// The UNIS/MS sink, which receives every probe's batches.
    pub unis: Option<mpsc::Sender<Batch>>,
    /// The slots in UNIS that `simple_avoid` probes plan around (kept by
    /// the UNIS/MS sink).
    pub reservations: Option<Board>,
    /// Commands from the control socket.
    pub commands: Option<mpsc::Receiver<Command>>,
    /// The remote-write sinks, which receive every probe's batches.
    pub remote_write: Vec<mpsc::Sender<Batch>>,
    /// Where the local configuration comes from, for `reload`.
    pub reload: Option<LocalSource>,
}

/// Runs the probes of `config` until `length` is reached or `shutdown`
/// completes, following the configurations that arrive on
/// `links.updates`; then flushes everything and returns. Without updates (or with `--once`), the run also ends when every
/// probe has finished its schedule.
pub async fn run(
    config: &Config,
    options: RunOptions,
    links: Links,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    run_prepared(
        config,
        prepare(config, Start::Library, "configuration"),
        options,
        links,
        shutdown,
    )
    .await
}

/// [`run`] with probes built by [`prepare`] (perhaps for another
/// configuration: what `config` wants as it was built is used, the rest is
/// built now, and built probes it does not want are dropped unused).
pub async fn run_prepared(
    config: &Config,
    prepared: Prepared,
    options: RunOptions,
    links: Links,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    let Prepared {
        mut builder,
        probes,
    } = prepared;
    if let KernelAccess::Loaded(k) = builder.kernel()
        && let Some(logger) = k.take_logger()
        && let Err(e) = klog::spawn(logger)
    {
        tracing::warn!(error = %e, "the eBPF programs' log records cannot be read");
    }
    let (reporter, tx) = Reporter::new(64, links.unis.clone());
    let reporter = reporter.with_remote_write(links.remote_write);
    let reporter = tokio::spawn(reporter.run());
    let (done, mut finished) = mpsc::unbounded_channel();
    let (alarms, _timer) = Alarms::start();
    let once = options.length == RunLength::Once;
    let length = options.length;
    let unis = links.unis.is_some();
    let mut sup = Supervisor::new(builder, probes, tx, done, options, unis, alarms)
        .with_reservations(links.reservations.clone());
    sup.start_all(config).await;
    // Built for a configuration that no longer wants them: never run.
    sup.prebuilt.clear();
    let mut updates = if once { None } else { links.updates };
    let mut commands = if once { None } else { links.commands };
    let mut steer = steer::Steer::new(config, links.reload);
    let limit = async {
        match length {
            RunLength::For(d) => tokio::time::sleep(d).await,
            _ => std::future::pending().await,
        }
    };
    tokio::pin!(limit, shutdown);
    loop {
        // A run whose probes were steered through the control socket goes
        // on until stopped: the operator may start them again.
        if updates.is_none() && sup.all_finished() && !steer.steered() {
            break;
        }
        let next_retry = sup.retries.next_at();
        tokio::select! {
            Some(id) = finished.recv() => sup.finished(id),
            () = async {
                match next_retry {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => sup.retry_due(),
            changed = async {
                match &mut updates {
                    Some(u) => u.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                match changed {
                    Ok(()) => {
                        let next = updates.as_mut().map(|u| u.borrow_and_update().clone());
                        if let Some(next) = next {
                            let current = steer.rebase(next);
                            // Not strict: failures are logged and kept
                            // for `status`.
                            let _ = sup.apply(&current, false).await;
                        }
                    }
                    Err(_) => updates = None,
                }
            }
            command = async {
                match &mut commands {
                    Some(c) => c.recv().await,
                    None => std::future::pending().await,
                }
            } => match command {
                Some(command) => steer.handle(command, &mut sup).await,
                None => commands = None,
            },
            () = &mut limit => break,
            () = &mut shutdown => {
                tracing::info!("stopping");
                break;
            }
        }
    }
    sup.stop_all().await;
    drop(sup);
    let failures = match reporter.await {
        Ok(failures) => failures,
        Err(e) => {
            tracing::error!(error = %e, "reporter task failed");
            1
        }
    };
    if failures > 0 && length != RunLength::UntilStopped {
        return Err(RunError::Undelivered { failures });
    }
    Ok(())
}
