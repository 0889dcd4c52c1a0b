//! Part 4, start-up: the time to the first sample (see
//! [`first_sample`](super::first_sample)), then what registering costs the UNIS/MS server and how long
//! it takes. blippd starts against the test server (`blipp-unis-server`,
//! which answers as the real one and validates every body with its
//! schemas), once on an empty server and once more with the same
//! configuration (the restart of a running fleet), with its default probe
//! set and with 20 probes. The request counts come from both sides: blippd's
//! own log lines and the server's count of what it answered.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::daemon::Daemon;
use super::machine;
use super::stats::Summary;
use super::test_server::{Server, build_server};

/// Options of `cargo xtask bench startup`.
#[derive(Clone, clap::Parser)]
pub struct Args {
    /// Rounds: each runs every configuration on an empty server, first
    /// start then restart.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Rounds of the time to the first sample (each starts blippd once in
    /// each mode).
    #[arg(long, default_value_t = 11)]
    first_sample_rounds: u32,
}

/// How long a start-up may take before the run is called failed.
const TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    /// blippd's built-in probes (cpu, mem, net, disk).
    Default,
    /// 20 probes: five each of cpu (per CPU), mem, net and disk.
    Twenty,
}

impl Setup {
    fn label(self) -> &'static str {
        match self {
            Self::Default => "default (4 probes)",
            Self::Twenty => "20 probes",
        }
    }

    fn probes(self) -> Option<Value> {
        match self {
            Self::Default => None,
            Self::Twenty => {
                let mut probes = serde_json::Map::new();
                for i in 0..5 {
                    probes.insert(
                        format!("cpu{i}"),
                        json!({"probe_module": "cpu", "percpu": true}),
                    );
                    for module in ["mem", "net", "disk"] {
                        probes.insert(format!("{module}{i}"), json!({"probe_module": module}));
                    }
                }
                Some(Value::Object(probes))
            }
        }
    }
}

const SETUPS: [Setup; 2] = [Setup::Default, Setup::Twenty];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    First,
    Restart,
}

impl Start {
    fn label(self) -> &'static str {
        match self {
            Self::First => "first start",
            Self::Restart => "restart",
        }
    }
}

/// One blippd start.
struct Run {
    setup: Setup,
    start: Start,
    /// From exec to blippd's `registered in UNIS` line.
    registered: Duration,
    /// Requests blippd counted for its registration.
    registration_requests: u64,
    /// From exec to `first report delivered`.
    first_report: Duration,
    /// UNIS and MS requests blippd counted for its first report.
    report_unis: u64,
    report_ms: u64,
    /// What the server answered from blippd's exec to its first report,
    /// and how many of its own `GET`s of `metadata_URL` that took.
    server_unis: u64,
    server_ms: u64,
    server_own: u64,
}

/// `field=N` of a log line.
fn field(line: &str, name: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

/// Waits for a log line containing `what`, with the instant it arrived.
fn wait_line(lines: &mpsc::Receiver<(Instant, String)>, what: &str) -> Result<(Instant, String)> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok((at, line)) if line.contains(what) => return Ok((at, line)),
            Ok(_) => {}
            Err(_) => bail!("no {what:?} line from blippd within {TIMEOUT:?}"),
        }
    }
}

fn start_blippd(
    blippd: &Path,
    config: &Path,
    server: &mut Server,
    setup: Setup,
    start: Start,
) -> Result<Run> {
    let before = server.requests()?;
    let mut cmd = Command::new(blippd);
    cmd.arg("-c")
        .arg(config)
        .args(["--control-socket", "none", "-d", "INFO"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1");
    let exec = Instant::now();
    let mut daemon = Daemon::spawn("blippd", &mut cmd)?;
    let (_, _, Some(stderr)) = daemon.pipes() else {
        bail!("blippd has no stderr pipe");
    };
    let lines = super::first_sample::lines_of(stderr);
    let (registered_at, registered) = wait_line(&lines, "registered in UNIS")?;
    let (reported_at, reported) = wait_line(&lines, "first report delivered")?;
    let after = server.requests()?;
    daemon.stop()?;
    let get = |line: &str, name: &str| {
        field(line, name).with_context(|| format!("no {name}= in blippd's line {line:?}"))
    };
    Ok(Run {
        setup,
        start,
        registered: registered_at - exec,
        registration_requests: get(&registered, "requests")?,
        first_report: reported_at - exec,
        report_unis: get(&reported, "unis_requests")?,
        report_ms: get(&reported, "ms_requests")?,
        server_unis: after.0 - before.0,
        server_ms: after.1 - before.1,
        server_own: after.2 - before.2,
    })
}

fn write_config(dir: &Path, url: &str, setup: Setup) -> Result<PathBuf> {
    let mut conf = json!({
        "unis_url": url,
        "spool_dir": dir.join("spool").display().to_string(),
    });
    if let Some(probes) = setup.probes() {
        conf["probes"] = probes;
    }
    let path = dir.join("blipp.json");
    let doc = json!({"properties": {"configurations": conf}});
    std::fs::write(&path, doc.to_string())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Runs part 4 and prints its table.
#[expect(clippy::print_stdout, reason = "the benchmark's figures")]
pub fn run(opts: &Args, blippd: &Path) -> Result<()> {
    super::first_sample::run(blippd, opts.first_sample_rounds)?;
    let server_bin = build_server()?;
    let scratch = super::scratch_dir("startup")?;
    println!(
        "\n## Start-up against the UNIS/MS test server: {} rounds, load average before: {}",
        opts.rounds,
        machine::loadavg()
    );
    let mut runs = Vec::new();
    for round in 0..opts.rounds {
        for setup in SETUPS {
            // An empty server for each: a first start is one.
            let mut server = Server::start(&server_bin, None)?;
            let dir = scratch.join(format!("{setup:?}-{round}"));
            std::fs::create_dir_all(&dir)?;
            let config = write_config(&dir, &server.url, setup)?;
            for start in [Start::First, Start::Restart] {
                let run = start_blippd(blippd, &config, &mut server, setup, start)
                    .with_context(|| format!("{}, {}", setup.label(), start.label()))?;
                println!(
                    "round {}/{}  {:<20} {:<12} registered after {} requests in {:.0} ms; first report after {:.2} s: {} UNIS + {} MS requests (server: {} UNIS, {} MS, {} of its own)",
                    round + 1,
                    opts.rounds,
                    setup.label(),
                    start.label(),
                    run.registration_requests,
                    run.registered.as_secs_f64() * 1000.0,
                    run.first_report.as_secs_f64(),
                    run.report_unis,
                    run.report_ms,
                    run.server_unis,
                    run.server_ms,
                    run.server_own,
                );
                runs.push(run);
            }
            server.stop()?;
        }
    }
    print!("{}", table(&runs));
    Ok(())
}

#[expect(clippy::cast_precision_loss, reason = "counts for display")]
fn table(runs: &[Run]) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "\n| configuration | start | registration: requests | registration: wall time, ms | first report: UNIS + MS requests (blippd) | server answered, UNIS + MS (+ its own metadata GETs) |\n|---|---|---|---|---|---|\n",
    );
    for setup in SETUPS {
        for start in [Start::First, Start::Restart] {
            let of = |f: &dyn Fn(&Run) -> f64| {
                let values: Vec<f64> = runs
                    .iter()
                    .filter(|r| r.setup == setup && r.start == start)
                    .map(f)
                    .collect();
                Summary::of(&values)
            };
            let (
                Some(req),
                Some(wall),
                Some(unis),
                Some(ms),
                Some(server_unis),
                Some(server_ms),
                Some(server_own),
            ) = (
                of(&|r| r.registration_requests as f64),
                of(&|r| r.registered.as_secs_f64() * 1000.0),
                of(&|r| r.report_unis as f64),
                of(&|r| r.report_ms as f64),
                of(&|r| r.server_unis as f64),
                of(&|r| r.server_ms as f64),
                of(&|r| r.server_own as f64),
            )
            else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} + {} | {} + {} (+ {}) |",
                setup.label(),
                start.label(),
                req.show(0),
                wall.show(0),
                unis.show(0),
                ms.show(0),
                server_unis.show(0),
                server_ms.show(0),
                server_own.show(0),
            );
        }
    }
    out.push_str(
        "\nWall time runs from blippd's exec to its `registered in UNIS` line (it includes loading the eBPF programs, which happens first); the server's count covers exec to the first report. The MS takes one `POST /events` per new mid (it creates one collection per request), so a first start costs the MS one request per series; a restart with the same configuration costs none of them.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_a_log_line() {
        let line = "2026-11-25T19:00:00.1Z  INFO blipp::unis::register: registered in UNIS requests=6 node=\"created\" ports=2";
        assert_eq!(field(line, "requests"), Some(6));
        assert_eq!(field(line, "ports"), Some(2));
        assert_eq!(field(line, "node"), None);
        assert_eq!(field(line, "unis_requests"), None);
    }

    #[test]
    fn twenty_probes_are_twenty() {
        assert_eq!(
            Setup::Twenty.probes().unwrap().as_object().unwrap().len(),
            20
        );
        assert!(Setup::Default.probes().is_none());
    }
}
