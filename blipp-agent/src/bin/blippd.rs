//! blippd: the blipp daemon.

use std::process::ExitCode;
use std::time::Duration;

use blipp::arbiter::{self, Links, RunError, RunLength, RunOptions, Start};
use blipp::cli::{Args, Existing};
use blipp::config::{Config, Local, LocalSource, Precedence};
use blipp::control::{Command, ControlSocket, hangup};
use blipp::daemon::{self, PidFile};
use blipp::logging::LevelHandle;
use blipp::report::prometheus::server::{self, Prepared};
use blipp::report::prometheus::store::{STORE, Store};
use blipp::report::remote_write::sink::RemoteWriteSink;
use blipp::report::spool::Spool;
use blipp::report::unis_ms::UnisMs;
use blipp::source::ebpf::handover;
use blipp::unis::reservations::Board;
use blipp::unis::{self, Endpoint, Session, UnisError};
use blipp::{config, logging, probe};
use clap::Parser;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Exit status for a configuration the agent refuses.
const EXIT_CONFIG: u8 = 2;

/// Exit status of a run that ends by itself (`--once`, `--duration`) when
/// a write to stdout or a data file failed: it ran, but did not deliver.
const EXIT_UNDELIVERED: u8 = 3;

#[expect(
    clippy::print_stderr,
    reason = "the binary reports fatal errors on stderr"
)]
fn fail(code: u8, error: &dyn std::error::Error) -> ExitCode {
    let mut message = format!("blippd: {error}");
    let mut source = error.source();
    while let Some(e) = source {
        // Errors that print their source inline are not repeated.
        let text = e.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = e.source();
    }
    eprintln!("{}", config::escape_controls(&message));
    ExitCode::from(code)
}

/// Refuses to run with one line per fault on stderr, each as [`fail`]
/// prints one.
#[expect(
    clippy::print_stderr,
    reason = "the binary reports fatal errors on stderr"
)]
fn refuse<T: std::fmt::Display>(code: u8, faults: impl IntoIterator<Item = T>) -> ExitCode {
    for fault in faults {
        eprintln!("{}", config::escape_controls(&format!("blippd: {fault}")));
    }
    ExitCode::from(code)
}

/// Watches SIGINT and SIGTERM from the moment it is called (in the
/// runtime): a signal that arrives while the probes are still being built
/// stops blippd cleanly instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let watch = |kind: SignalKind, name: &'static str| {
        let stream = signal(kind)
            .inspect_err(|e| tracing::warn!(error = %e, "cannot watch {name}"))
            .ok();
        async move {
            match stream {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
    };
    let int = watch(SignalKind::interrupt(), "SIGINT");
    let term = watch(SignalKind::terminate(), "SIGTERM");
    async move {
        tokio::select! {
            () = int => {}
            () = term => {}
        }
    }
}

#[expect(clippy::print_stdout, reason = "--check prints the resolved probes")]
fn print_check(config: &config::Config) {
    for p in &config.probes {
        println!(
            "{}\tmodule={}\tmode={:?}\tschedule={:?}\tstatus={:?}",
            p.name, p.module, p.mode, p.schedule, p.status
        );
    }
}

/// How long the probes wait for the first registration in UNIS, so that
/// they start with the configuration UNIS holds. A UNIS that does not
/// answer by then is registered with later; the probes measure meanwhile.
const FIRST_REGISTRATION: Duration = Duration::from_secs(10);

/// Batches waiting for the UNIS/MS sink: enough for every probe to report
/// a few times while one request is in flight.
const UNIS_QUEUE: usize = 256;

/// The UNIS/MS sink, when a UNIS URL is configured.
fn unis_sink(
    args: &Args,
    local: &Local,
    config: &Config,
) -> Result<Option<(UnisMs, watch::Receiver<Config>)>, UnisError> {
    let settings = &config.settings;
    let Some(url) = &settings.unis_url else {
        if config.probes.iter().any(|p| p.ms_url.is_some()) {
            tracing::warn!(
                "ms_url without unis_url: the MS needs metadata in UNIS; samples are not sent to the MS"
            );
        }
        return Ok(None);
    };
    let http = unis::tls::http_client(&settings.tls)?;
    if settings.tls.use_ssl && !url.starts_with("https://") {
        tracing::warn!(unis_url = %url, "use_ssl is set but unis_url is not https://: the client certificate is not used");
    }
    let options = unis::Options {
        node_id: args.node_id.clone(),
        urn: args.urn.clone(),
        use_existing: args.existing == Existing::Use,
        fresh_service: args.new_service,
        read_config: !args.no_query,
        precedence: if args.override_unis {
            Precedence::Local
        } else {
            Precedence::Unis
        },
    };
    let session = Session::new(
        Endpoint::new(url, http.clone())?,
        options,
        local.clone(),
        config.clone(),
    );
    let spool = match Spool::open(&settings.spool_dir, settings.spool_limit_bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no disk spool: while UNIS or the MS is down, only reporting_tolerance reports per probe are kept");
            None
        }
    };
    let (tx, rx) = watch::channel(config.clone());
    Ok(Some((UnisMs::new(session, http, spool, tx), rx)))
}

/// Batches waiting for a remote-write sink.
const REMOTE_WRITE_QUEUE: usize = 256;

/// The remote-write sinks of `prometheus.remote_write`, each over its own
/// spool directory `<spool_dir>/remote_write/<url as a file name>`.
fn remote_write_sinks(
    config: &Config,
) -> Result<Vec<RemoteWriteSink>, blipp::report::remote_write::sink::RemoteWriteError> {
    let settings = &config.settings;
    settings
        .remote_write
        .iter()
        .map(|dest| {
            let dir = settings
                .spool_dir
                .join("remote_write")
                .join(dest.spool_name());
            let spool = match Spool::open(&dir, settings.spool_limit_bytes) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(url = %dest.url, error = %e, "remote write: no disk spool: while the receiver is down, only reporting_tolerance reports per probe are kept");
                    None
                }
            };
            RemoteWriteSink::new(dest.clone(), spool, config)
        })
        .collect()
}

/// Starts the Prometheus scrape endpoint: from now on the probes hand
/// their collections to the store it serves.
async fn scrape_endpoint(prepared: Prepared) -> std::io::Result<JoinHandle<()>> {
    let address = prepared.address();
    let listener = server::bind(&prepared).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("prometheus.scrape: cannot listen on {address}: {e}"),
        )
    })?;
    let store = STORE.get_or_init(Store::default);
    tracing::info!(%address, path = blipp::report::prometheus::config::PATH, "Prometheus scrape endpoint ready");
    Ok(tokio::spawn(server::serve(listener, prepared, store)))
}

/// A task that ends with its owner.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Commands waiting for the arbiter.
const CONTROL_QUEUE: usize = 16;

/// Serves the control socket, unless `--control-socket none` or it cannot
/// be bound (then blippd runs without it, saying why once), and turns
/// SIGHUP into a reload, which needs no socket.
fn control_socket(
    args: &Args,
    log_level: LevelHandle,
) -> (Option<JoinHandle<()>>, Option<mpsc::Receiver<Command>>) {
    let (tx, rx) = mpsc::channel(CONTROL_QUEUE);
    tokio::spawn(hangup::reload_on_hangup(tx.clone()));
    let Some(path) = args.control_socket() else {
        tracing::info!("no control socket (--control-socket none)");
        return (None, Some(rx));
    };
    match ControlSocket::bind(&path) {
        Ok(socket) => {
            tracing::info!(path = %socket.path().display(), "control socket ready");
            let task = tokio::spawn(socket.serve(tx, Some(log_level)));
            (Some(task), Some(rx))
        }
        Err(e) => {
            tracing::warn!(error = %e, "no control socket: blippcmd cannot reach this blippd (--control-socket PATH chooses another place)");
            (None, Some(rx))
        }
    }
}

fn main() -> ExitCode {
    // Before anything that takes time: a SIGHUP must not kill blippd
    // while it starts.
    hangup::ignore_until_watched();
    // SAFETY: blippd still has one thread (only SIGHUP was set up before).
    let mut inherited = match unsafe { handover::take() } {
        Ok(h) => h,
        Err(e) => return fail(1, &e),
    };
    let args = Args::parse();
    let log_level = match logging::init(args.log_level, args.log.as_deref()) {
        Ok(h) => h,
        Err(e) => return fail(1, &e),
    };
    match blipp::fdlimit::raise_to_hard() {
        Ok((soft, hard)) => tracing::debug!(soft, hard, "open descriptors limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the limit of open descriptors"),
    }
    let local = match &mut inherited {
        // The configuration the first image checked and attached the
        // programs for.
        Some(h) => match (args.config_file.as_deref(), h.take_config_file()) {
            (Some(path), Some(text)) => config::load_checked(Some((path, text)), &args.overrides()),
            (None, None) => config::load_checked(None, &args.overrides()),
            _ => {
                let e = std::io::Error::other(
                    "the eBPF handover of a re-executed blippd: the configuration file handed over does not match the command line",
                );
                return fail(1, &e);
            }
        },
        None => config::load_local(args.config_file.as_deref(), &args.overrides()),
    };
    let local = match local {
        Ok(l) => l,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    let config = match config::resolve(local.doc.clone()) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    // What a probe refuses when it is built, refused before anything
    // starts: `--check` and `--strict` refuse the same configurations with
    // the same lines.
    let origin = config::origin(args.config_file.as_deref());
    if args.check || args.strict {
        let refused = probe::check(&config, &origin);
        if !refused.is_empty() {
            return refuse(EXIT_CONFIG, refused);
        }
    }
    // Remote write's credentials, read now so that a file that cannot be
    // read is refused on the terminal, by `--check` too.
    for dest in &config.settings.remote_write {
        if let Err(e) = blipp::report::remote_write::sink::check(dest) {
            return fail(EXIT_CONFIG, &e);
        }
    }
    let scrape = match config
        .settings
        .prometheus
        .scrape
        .as_ref()
        .map(|s| Prepared::load(s, &origin))
    {
        Some(Err(e)) => return fail(EXIT_CONFIG, &e),
        Some(Ok(p)) => Some(p),
        None => None,
    };
    if args.check {
        print_check(&config);
        return ExitCode::SUCCESS;
    }
    // Detached (and the pid file written) once the configuration is known
    // good, so that a bad file is still refused on the terminal; an image
    // re-executed after loading is already detached, under the same pid.
    let _pid_file = if inherited.is_some() {
        args.pid_file.as_deref().map(PidFile::adopt)
    } else if args.daemonize {
        if args.log.is_none() {
            tracing::warn!("daemonizing without -l/--log: blippd's log lines are discarded");
        }
        // SAFETY: nothing started a thread yet: the runtime, the launcher
        // and the probes come later.
        match unsafe { daemon::detach(args.pid_file.as_deref()) } {
            Ok(pid_file) => pid_file,
            Err(e) => return fail(1, &e),
        }
    } else {
        match args.pid_file.as_deref().map(PidFile::write).transpose() {
            Ok(pid_file) => pid_file,
            Err(e) => return fail(1, &e),
        }
    };
    let length = match (args.once, args.duration) {
        (true, _) => RunLength::Once,
        (false, Some(secs)) if secs.is_finite() && secs >= 0.0 => {
            RunLength::For(Duration::from_secs_f64(secs))
        }
        (false, Some(secs)) => {
            let e = std::io::Error::other(format!(
                "--duration {secs}: expected a non-negative number of seconds"
            ));
            return fail(EXIT_CONFIG, &e);
        }
        (false, None) => RunLength::UntilStopped,
    };
    // Probes are built (eBPF programs loaded and attached) before the
    // runtime starts its threads: the command launcher is forked here,
    // which only a single-threaded process may do soundly; capabilities
    // are per thread, and every one blippd does not use after start-up is
    // dropped here for the whole process; and
    // blippd re-executes itself once the programs are attached, which
    // only one thread may do cleanly. They are built for the local
    // configuration; the first registration in UNIS may change some, which
    // are then built again without those capabilities (eBPF ones fall back
    // to /proc, saying so).
    let start = match inherited {
        Some(objects) => Start::Inherited(objects),
        None if args.no_reexec => Start::InProcess,
        None => Start::Reexec {
            config_file: local.file_text.clone(),
        },
    };
    let prepared = arbiter::prepare(&config, start, &origin);
    // Without `--strict`, a faulty probe is reported and the others run;
    // blippd stops only when none can (a `--once` run does not try a probe
    // again, so a host's failure counts there too).
    if prepared.none_can_run(length != RunLength::Once) {
        let config_only = prepared.faults().all(probe::Fault::is_config);
        return refuse(if config_only { EXIT_CONFIG } else { 1 }, prepared.faults());
    }
    // One thread: the work of a tick is a few reads and a write, and a
    // second worker only added cross-thread wake-ups (futex, eventfd) to
    // every tick. Probes that may block run on the blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .thread_name("blippd")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(1, &e),
    };
    let options = RunOptions {
        length,
        stdout: args.stdout,
    };
    let result = runtime.block_on(async {
        let mut shutdown = std::pin::pin!(shutdown_signal());
        let (control, commands) = if length == RunLength::Once {
            (None, None)
        } else {
            control_socket(&args, log_level)
        };
        let _scrape = match scrape.filter(|_| length != RunLength::Once) {
            Some(prepared) => match scrape_endpoint(prepared).await {
                Ok(task) => Some(AbortOnDrop(task)),
                Err(e) => return Err(fail(1, &e)),
            },
            None => None,
        };
        let sink = match unis_sink(&args, &local, &config) {
            Ok(s) => s,
            Err(e) => return Err(fail(EXIT_CONFIG, &e)),
        };
        let remote_write = match remote_write_sinks(&config) {
            Ok(s) => s,
            Err(e) => return Err(fail(EXIT_CONFIG, &e)),
        };
        let (remote_write, remote_tasks): (Vec<_>, Vec<_>) = remote_write
            .into_iter()
            .map(|sink| {
                let (tx, rx) = mpsc::channel(REMOTE_WRITE_QUEUE);
                (tx, tokio::spawn(sink.run(rx)))
            })
            .unzip();
        let mut config = config;
        let mut stopped = false;
        let (links, sink) = match sink {
            Some((sink, mut updates)) => {
                let (tx, rx) = mpsc::channel(UNIS_QUEUE);
                let board = Board::default();
                let task = tokio::spawn(sink.with_board(board.clone()).run(rx));
                // Start with the configuration merged with UNIS when UNIS
                // answers soon; else measure with the local one.
                tokio::select! {
                    first = tokio::time::timeout(FIRST_REGISTRATION, updates.changed()) => match first {
                        Ok(Ok(())) => config = updates.borrow_and_update().clone(),
                        _ => tracing::info!("starting the probes before the first registration in UNIS"),
                    },
                    () = &mut shutdown => stopped = true,
                }
                (
                    Links {
                        updates: Some(updates),
                        unis: Some(tx),
                        reservations: Some(board),
                        ..Links::default()
                    },
                    Some(task),
                )
            }
            None => (Links::default(), None),
        };
        let links = Links {
            commands,
            remote_write,
            reload: Some(LocalSource {
                file: args.config_file.clone(),
                overrides: args.overrides(),
            }),
            ..links
        };
        let ran = if stopped {
            tracing::info!("stopping");
            drop(links);
            Ok(())
        } else {
            arbiter::run_prepared(&config, prepared, options, links, shutdown).await
        };
        // The arbiter has stopped every probe: the sink delivers or spools
        // what is left, then ends.
        if let Some(task) = sink
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "the UNIS/MS sink failed");
        }
        for task in remote_tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a remote-write sink failed");
            }
        }
        if let Some(task) = control {
            // Dropping the server removes its socket file.
            task.abort();
            let _ = task.await;
        }
        ran.map_err(|e| match e {
            RunError::Undelivered { .. } => fail(EXIT_UNDELIVERED, &e),
        })
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
