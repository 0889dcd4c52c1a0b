//! CPU per scrape: blippd's Prometheus endpoint with its default probes
//! (cpu, mem, net, disk every second) next to node_exporter with the
//! matching collectors (cpu, meminfo, netdev, diskstats, loadavg), both
//! scraped as Prometheus scrapes (its `Accept` header, gzip).
//!
//! A scrape of blippd serialises what the probes last collected; a scrape
//! of node_exporter reads /proc and then serialises. Each process is
//! measured alone, in turn, the order alternating by round: first a quiet
//! window with no scrapes (its own background cost per second), then a
//! burst of back-to-back scrapes; the CPU per scrape is the burst's CPU
//! time less the background cost of its duration, divided by the scrapes.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::daemon::Daemon;
use super::machine::{self, Machine};
use super::measure;
use super::scrape;
use super::stats::Summary;

/// Options of `cargo xtask bench prometheus`.
#[derive(Clone, clap::Parser)]
pub struct Args {
    /// Rounds: each exporter is measured once per round, alternating.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Scrapes per burst.
    #[arg(long, default_value_t = 200)]
    scrapes: u32,
    /// Length of the quiet window, seconds.
    #[arg(long, default_value_t = 10)]
    quiet: u64,
}

/// Debian packages this part compares with.
pub const PACKAGES: &[&str] = &["prometheus-node-exporter"];

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// Start-up and the first collections before anything is measured.
const WARMUP: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exporter {
    Blippd,
    NodeExporter,
}

impl Exporter {
    fn label(self) -> &'static str {
        match self {
            Exporter::Blippd => "blippd (serialises what it holds)",
            Exporter::NodeExporter => "node_exporter (collects, then serialises)",
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// The series of an uncompressed exposition.
fn series(body: &[u8], must_have: &str) -> Result<usize> {
    let text = String::from_utf8_lossy(body);
    if !text.lines().any(|l| l.starts_with(must_have)) {
        bail!("the exposition has no {must_have}");
    }
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count())
}

fn start(e: Exporter, blippd: &Path, dir: &Path) -> Result<(Daemon, SocketAddr)> {
    fs::create_dir_all(dir)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
    let log: Stdio = fs::File::create(dir.join("stderr.log"))?.into();
    let mut cmd = match e {
        Exporter::Blippd => {
            let config = dir.join("blippd.json");
            fs::write(
                &config,
                format!(
                    r#"{{"properties":{{"configurations":{{"prometheus":{{"scrape":{{"port":{}}}}},"probe_defaults":{{"schedule_params":{{"every":1}}}}}}}}}}"#,
                    addr.port()
                ),
            )?;
            let mut c = Command::new(blippd);
            c.arg("--config-file")
                .arg(&config)
                .args(["--control-socket", "none"]);
            c
        }
        Exporter::NodeExporter => {
            let mut c = Command::new(NODE_EXPORTER);
            c.args([
                "--collector.disable-defaults",
                "--collector.cpu",
                "--collector.meminfo",
                "--collector.netdev",
                "--collector.diskstats",
                "--collector.loadavg",
            ])
            .arg(format!("--web.listen-address={addr}"));
            c
        }
    };
    cmd.stdout(Stdio::null()).stderr(log);
    let mut daemon = Daemon::spawn(e.label(), &mut cmd)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match scrape::get_metrics(addr, false) {
            Ok(_) => break,
            Err(err) if Instant::now() > deadline => {
                return Err(err.context(format!("{} did not answer within 10 s", e.label())));
            }
            Err(_) => {
                daemon.check_running()?;
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    Ok((daemon, addr))
}

/// One exporter's figures from one round.
#[derive(Clone, Copy, Debug)]
struct Round {
    /// CPU seconds per scrape, background removed.
    per_scrape: f64,
    /// Background CPU, seconds per second.
    background: f64,
    /// Series in an exposition.
    series: usize,
    /// Bytes of a gzip-compressed exposition.
    gzip_bytes: usize,
    /// CPUs everything else kept busy during the burst.
    others_busy: f64,
}

fn measure(e: Exporter, opts: &Args, blippd: &Path, dir: &Path) -> Result<Round> {
    let (mut daemon, addr) = start(e, blippd, dir)?;
    std::thread::sleep(WARMUP);
    daemon.check_running()?;
    let must_have = match e {
        Exporter::Blippd => "blipp_cpu_utilization_user",
        Exporter::NodeExporter => "node_cpu_seconds_total",
    };
    let series = series(&scrape::get_metrics(addr, false)?, must_have)?;
    let gzip_bytes = scrape::get_metrics(addr, true)?.len();
    let pid = daemon.pid();
    // The background: its own work with nobody scraping.
    let q0 = measure::cpu_snapshot(pid)?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(opts.quiet));
    let quiet = measure::cpu_used(&q0, &measure::cpu_snapshot(pid)?).seconds;
    let background = quiet / t0.elapsed().as_secs_f64();
    // The burst.
    let machine0 = machine::cpu_times();
    let b0 = measure::cpu_snapshot(pid)?;
    let t1 = Instant::now();
    for _ in 0..opts.scrapes {
        scrape::get_metrics(addr, true)?;
    }
    let elapsed = t1.elapsed().as_secs_f64();
    let burst = measure::cpu_used(&b0, &measure::cpu_snapshot(pid)?).seconds;
    let all_busy = machine::busy_cpus(machine0, machine::cpu_times(), Machine::this().cpus);
    daemon.check_running()?;
    daemon.stop()?;
    Ok(Round {
        per_scrape: (burst - background * elapsed).max(0.0) / f64::from(opts.scrapes),
        background,
        series,
        gzip_bytes,
        // The scraping client (this process) is part of the other load.
        others_busy: (all_busy - burst / elapsed).max(0.0),
    })
}

/// Runs the part and prints its table.
#[expect(clippy::print_stdout, reason = "the benchmark's figures")]
pub fn run(opts: &Args, blippd: &Path) -> Result<()> {
    let scratch = super::scratch_dir("prometheus")?;
    println!(
        "## CPU per Prometheus scrape: {} rounds, {} scrapes per burst (gzip, Prometheus's Accept), load average before: {}",
        opts.rounds,
        opts.scrapes,
        machine::loadavg()
    );
    let mut rounds: Vec<(Exporter, Round)> = Vec::new();
    for round in 0..opts.rounds {
        let order = if round % 2 == 0 {
            [Exporter::Blippd, Exporter::NodeExporter]
        } else {
            [Exporter::NodeExporter, Exporter::Blippd]
        };
        for e in order {
            let dir = scratch.join(format!("{e:?}-{round}"));
            let r = measure(e, opts, blippd, &dir)
                .with_context(|| format!("measuring {}", e.label()))?;
            let _ = fs::remove_dir_all(&dir);
            println!(
                "round {}/{}  {:<42} {:.0} µs per scrape  background {:.4} CPU s/s  {} series  others busy {:.2} CPUs",
                round + 1,
                opts.rounds,
                e.label(),
                r.per_scrape * 1e6,
                r.background,
                r.series,
                r.others_busy
            );
            rounds.push((e, r));
        }
    }
    println!(
        "\n| exporter | CPU µs per scrape | µs per series | series | gzip bytes | background CPU ms per s |"
    );
    println!("|---|---|---|---|---|---|");
    let of = |e: Exporter, f: &dyn Fn(&Round) -> f64| {
        Summary::of(
            &rounds
                .iter()
                .filter(|(k, _)| *k == e)
                .map(|(_, r)| f(r))
                .collect::<Vec<_>>(),
        )
    };
    #[expect(clippy::cast_precision_loss, reason = "counts for display")]
    for e in [Exporter::Blippd, Exporter::NodeExporter] {
        let (Some(us), Some(per), Some(series), Some(bytes), Some(bg)) = (
            of(e, &|r| r.per_scrape * 1e6),
            of(e, &|r| r.per_scrape * 1e6 / r.series as f64),
            of(e, &|r| r.series as f64),
            of(e, &|r| r.gzip_bytes as f64),
            of(e, &|r| r.background * 1e3),
        ) else {
            continue;
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            e.label(),
            us.show(0),
            per.show(2),
            series.show(0),
            bytes.show(0),
            bg.show(2)
        );
    }
    if let Some(o) = Summary::of(
        &rounds
            .iter()
            .map(|(_, r)| r.others_busy)
            .collect::<Vec<_>>(),
    ) {
        println!(
            "\nOther load during the bursts (the scraping client included): {} CPUs busy.",
            o.show(2)
        );
    }
    Ok(())
}
