//! blippd: the blipp daemon.

use std::process::ExitCode;
use std::time::Duration;

use blipp::arbiter::{self, RunLength, RunOptions};
use blipp::cli::Args;
use blipp::{config, logging};
use clap::Parser;

/// Exit status for a configuration the agent refuses.
const EXIT_CONFIG: u8 = 2;

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
    eprintln!("{message}");
    ExitCode::from(code)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot watch SIGINT");
                std::future::pending::<()>().await;
            }
        }
        () = term => {}
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

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = logging::init(args.log_level, args.log.as_deref()) {
        return fail(1, &e);
    }
    let config = match config::load(args.config_file.as_deref(), &args.overrides()) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    if args.check {
        print_check(&config);
        return ExitCode::SUCCESS;
    }
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
    // runtime starts its threads: capabilities are per thread, and the ones
    // only loading needed are dropped here for the whole process.
    let prepared = match arbiter::prepare(&config, true) {
        Ok(p) => p,
        Err(e) => return fail(1, &e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
    match runtime.block_on(arbiter::run_prepared(
        &config,
        prepared,
        options,
        shutdown_signal(),
    )) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e),
    }
}
