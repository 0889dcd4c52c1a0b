//! Part 1, userspace cost: blippd's default probe set at a 1 s interval
//! next to what an operator would run instead (Prometheus node_exporter
//! with the matching collectors, scraped once a second; collectd with the
//! matching plugins at a 1 s interval) and next to the floor (a process that
//! only reads the same /proc files). Each runs alone, in turn, the order
//! rotating every round; CPU time and memory are read from /proc/PID over
//! the same window for all.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::daemon::Daemon;
use super::floor;
use super::machine::{self, Machine};
use super::measure::{self, CpuUsed, Memory};
use super::scrape::{self, Scraper};
use super::stats::Summary;

/// Options of `cargo xtask bench userspace`.
#[derive(Clone, clap::Parser)]
pub struct Args {
    /// Rounds: every process runs once per round, in rotating order.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Length of one measured window, seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

/// Debian packages of the processes blippd is compared with.
pub const PACKAGES: &[&str] = &["prometheus-node-exporter", "collectd-core"];

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
const COLLECTD: &str = "/usr/sbin/collectd";

/// Time each process gets to start (and do its first, heavier collection)
/// before the window opens.
const WARMUP: Duration = Duration::from_secs(5);

/// blippd's built-in probe set (cpu, mem, net, disk) in `auto` mode, every
/// second instead of every 5 s.
const BLIPPD_CONFIG: &str =
    r#"{"properties":{"configurations":{"probe_defaults":{"schedule_params":{"every":1}}}}}"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contender {
    Floor,
    FloorKept,
    Blippd,
    NodeExporter,
    Collectd,
}

const CONTENDERS: [Contender; 5] = [
    Contender::Floor,
    Contender::FloorKept,
    Contender::Blippd,
    Contender::NodeExporter,
    Contender::Collectd,
];

impl Contender {
    fn label(self) -> &'static str {
        match self {
            Contender::Floor => "floor (open, read, close)",
            Contender::FloorKept => "floor (kept open, as blippd)",
            Contender::Blippd => "blippd",
            Contender::NodeExporter => "node_exporter",
            Contender::Collectd => "collectd",
        }
    }
}

/// How a contender's work in the window is counted, to show that each did
/// what it was started for.
enum Work {
    /// Lines (samples) blippd printed into this file.
    Samples(PathBuf),
    /// Successful scrapes; series per scrape.
    Scrapes(Scraper, usize),
    /// Lines collectd's csv plugin wrote under this directory.
    Csv(PathBuf),
    /// The floor reads and checks nothing.
    Reads,
}

impl Work {
    fn count(&self) -> Result<u64> {
        Ok(match self {
            Work::Samples(file) => count_lines(file)?,
            Work::Scrapes(s, _) => s.ok(),
            Work::Csv(dir) => count_lines(dir)?,
            Work::Reads => 0,
        })
    }
}

/// Newlines in a file, or in every file under a directory.
fn count_lines(path: &Path) -> Result<u64> {
    if path.is_dir() {
        let mut n = 0;
        for entry in fs::read_dir(path).with_context(|| format!("listing {}", path.display()))? {
            n += count_lines(&entry?.path())?;
        }
        Ok(n)
    } else {
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(bytes.iter().filter(|&&b| b == b'\n').count() as u64)
    }
}

struct Started {
    daemon: Daemon,
    work: Work,
}

/// The executables under test.
pub struct Tools {
    /// The release blippd.
    pub blippd: PathBuf,
    /// This xtask, which runs the floor reader.
    pub xtask: PathBuf,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn collectd_config(dir: &Path) -> String {
    let dir = dir.display();
    // Interval 1 and the five plugins matching blippd's default probes; the
    // csv plugin writes into the scratch directory on tmpfs, the cheapest
    // write plugin collectd has (without one it only logs complaints).
    format!(
        "Interval 1\nHostname \"bench\"\nFQDNLookup false\nBaseDir \"{dir}\"\n\
         PIDFile \"{dir}/collectd.pid\"\nPluginDir \"/usr/lib/collectd\"\n\
         TypesDB \"/usr/share/collectd/types.db\"\n\
         LoadPlugin logfile\n<Plugin logfile>\n  LogLevel warning\n  File STDERR\n</Plugin>\n\
         LoadPlugin cpu\nLoadPlugin memory\nLoadPlugin interface\nLoadPlugin disk\n\
         LoadPlugin load\nLoadPlugin csv\n<Plugin csv>\n  DataDir \"{dir}/csv\"\n</Plugin>\n"
    )
}

fn start(c: Contender, tools: &Tools, dir: &Path) -> Result<Started> {
    fs::create_dir_all(dir)?;
    let log = || -> Result<Stdio> { Ok(fs::File::create(dir.join("stderr.log"))?.into()) };
    Ok(match c {
        Contender::Floor | Contender::FloorKept => {
            let mut cmd = Command::new(&tools.xtask);
            cmd.arg("proc-floor")
                .args((c == Contender::FloorKept).then_some("--keep-open"))
                .args(floor::FILES.iter().map(|f| Path::new("/proc").join(f)))
                .stdout(Stdio::null())
                .stderr(log()?);
            Started {
                daemon: Daemon::spawn("floor reader", &mut cmd)?,
                work: Work::Reads,
            }
        }
        Contender::Blippd => {
            let config = dir.join("blippd.json");
            fs::write(&config, BLIPPD_CONFIG)?;
            let samples = dir.join("samples.jsonl");
            let mut cmd = Command::new(&tools.blippd);
            cmd.arg("--config-file")
                .arg(&config)
                .stdout(fs::File::create(&samples)?)
                .stderr(log()?);
            Started {
                daemon: Daemon::spawn("blippd", &mut cmd)?,
                work: Work::Samples(samples),
            }
        }
        Contender::NodeExporter => {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
            let mut cmd = Command::new(NODE_EXPORTER);
            cmd.args([
                "--collector.disable-defaults",
                "--collector.cpu",
                "--collector.meminfo",
                "--collector.netdev",
                "--collector.diskstats",
                "--collector.loadavg",
            ])
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log()?);
            let mut daemon = Daemon::spawn("node_exporter", &mut cmd)?;
            let deadline = Instant::now() + Duration::from_secs(10);
            let series = loop {
                match scrape::get_metrics(addr, false) {
                    Ok(body) => break scrape::check_series(&body)?,
                    Err(e) if Instant::now() > deadline => {
                        return Err(e.context("node_exporter did not answer within 10 s"));
                    }
                    Err(_) => {
                        daemon.check_running()?;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            };
            Started {
                daemon,
                work: Work::Scrapes(Scraper::start(addr), series),
            }
        }
        Contender::Collectd => {
            let config = dir.join("collectd.conf");
            fs::write(&config, collectd_config(dir))?;
            let csv = dir.join("csv");
            fs::create_dir_all(&csv)?;
            let mut cmd = Command::new(COLLECTD);
            cmd.arg("-f")
                .arg("-C")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(log()?);
            Started {
                daemon: Daemon::spawn("collectd", &mut cmd)?,
                work: Work::Csv(csv),
            }
        }
    })
}

/// One contender's figures from one window.
#[derive(Clone, Copy, Debug)]
struct Run {
    cpu: CpuUsed,
    memory: Memory,
    /// Units of work per second in the window (samples, scrapes, values).
    work_per_s: f64,
    /// CPUs kept busy by everything else on the machine meanwhile.
    others_busy: f64,
    /// Series per scrape (node_exporter).
    series: Option<usize>,
    /// blippd: the peak RSS of its loading image, which it logs before it
    /// re-executes itself (the process's `VmHWM` starts afresh then).
    loading_peak_kb: Option<u64>,
}

/// The `peak_rss_kb=` blippd logs before it re-executes itself once its
/// eBPF programs are attached.
fn loading_peak_kb(log: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains("re-executing"))?;
    let value = line.split("peak_rss_kb=").nth(1)?;
    value
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn measure(c: Contender, tools: &Tools, dir: &Path, window: Duration) -> Result<Run> {
    let started = start(c, tools, dir)?;
    let Started { mut daemon, work } = started;
    std::thread::sleep(WARMUP);
    daemon.check_running()?;
    let pid = daemon.pid();
    let machine0 = machine::cpu_times();
    let cpu0 = measure::cpu_snapshot(pid)?;
    let work0 = work.count()?;
    let t0 = Instant::now();
    std::thread::sleep(window);
    let cpu1 = measure::cpu_snapshot(pid)?;
    let elapsed = t0.elapsed().as_secs_f64();
    let machine1 = machine::cpu_times();
    let work1 = work.count()?;
    let memory = measure::memory(pid)?;
    daemon.check_running()?;
    let mut series = None;
    if let Work::Scrapes(scraper, n) = work {
        series = Some(n);
        let failed = scraper.finish();
        if failed > 0 {
            bail!("{failed} scrapes of node_exporter failed");
        }
    }
    daemon.stop()?;
    let loading_peak_kb = (c == Contender::Blippd)
        .then(|| fs::read_to_string(dir.join("stderr.log")).ok())
        .flatten()
        .and_then(|log| loading_peak_kb(&log));
    let cpu = measure::cpu_used(&cpu0, &cpu1);
    #[expect(clippy::cast_precision_loss, reason = "a count of lines")]
    let work_per_s = (work1.saturating_sub(work0)) as f64 / elapsed;
    if !matches!(c, Contender::Floor | Contender::FloorKept) && work_per_s <= 0.0 {
        let log = fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
        bail!(
            "{} did no work in the window; its stderr:\n{log}",
            c.label()
        );
    }
    let all_busy = machine::busy_cpus(machine0, machine1, Machine::this().cpus);
    Ok(Run {
        cpu,
        memory,
        work_per_s,
        others_busy: (all_busy - cpu.seconds / elapsed).max(0.0),
        series,
        loading_peak_kb,
    })
}

fn mib(kb: u64) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "kB for display")]
    let kb = kb as f64;
    kb / 1024.0
}

/// Runs part 1 and prints its table.
#[expect(clippy::print_stdout, reason = "the benchmark's figures")]
pub fn run(opts: &Args, tools: &Tools) -> Result<()> {
    let window = Duration::from_secs(opts.seconds);
    let scratch = super::scratch_dir("userspace")?;
    let mut runs: Vec<(Contender, Run)> = Vec::new();
    println!(
        "## Userspace cost: {} rounds of {} s per process, load average before: {}",
        opts.rounds,
        opts.seconds,
        machine::loadavg()
    );
    for round in 0..opts.rounds {
        for i in 0..CONTENDERS.len() {
            let c = CONTENDERS[(i + round as usize) % CONTENDERS.len()];
            let dir = scratch.join(format!("{c:?}-{round}"));
            let run = measure(c, tools, &dir, window)
                .with_context(|| format!("measuring {}", c.label()))?;
            let _ = fs::remove_dir_all(&dir);
            println!(
                "round {}/{}  {:<30} CPU {:.3} s{}  peak RSS {:.1} MiB  others busy {:.2} CPUs",
                round + 1,
                opts.rounds,
                c.label(),
                run.cpu.seconds,
                if run.cpu.exact { "" } else { " (ticks)" },
                mib(run.memory.peak_kb),
                run.others_busy
            );
            runs.push((c, run));
        }
    }
    print!("{}", table(&runs, opts.seconds));
    Ok(())
}

fn summary(runs: &[(Contender, Run)], c: Contender, f: impl Fn(&Run) -> f64) -> Option<Summary> {
    let values: Vec<f64> = runs
        .iter()
        .filter(|(k, _)| *k == c)
        .map(|(_, r)| f(r))
        .collect();
    Summary::of(&values)
}

/// The markdown table and the goals, from all runs.
fn table(runs: &[(Contender, Run)], seconds: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n| process | CPU s per {seconds} s | % of one CPU | peak RSS MiB | RSS at end MiB | of which private MiB | work per s |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    #[expect(clippy::cast_precision_loss, reason = "seconds")]
    let secs = seconds as f64;
    for c in CONTENDERS {
        let (Some(cpu), Some(pct), Some(peak), Some(end), Some(anon), Some(work)) = (
            summary(runs, c, |r| r.cpu.seconds),
            summary(runs, c, |r| r.cpu.seconds / secs * 100.0),
            summary(runs, c, |r| mib(r.memory.peak_kb)),
            summary(runs, c, |r| mib(r.memory.now_kb)),
            summary(runs, c, |r| mib(r.memory.anon_kb)),
            summary(runs, c, |r| r.work_per_s),
        ) else {
            continue;
        };
        let work = match c {
            Contender::Floor | Contender::FloorKept => format!("{} files", floor::FILES.len()),
            Contender::Blippd => format!("{} samples", work.show(1)),
            Contender::NodeExporter => format!(
                "{} scrapes of {} series",
                work.show(2),
                runs.iter().find_map(|(_, r)| r.series).unwrap_or(0)
            ),
            Contender::Collectd => format!("{} values (csv)", work.show(1)),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {work} |",
            c.label(),
            cpu.show(3),
            pct.show(2),
            peak.show(1),
            end.show(1),
            anon.show(1)
        );
    }
    if let Some(others) = Summary::of(&runs.iter().map(|(_, r)| r.others_busy).collect::<Vec<_>>())
    {
        let _ = writeln!(
            out,
            "\nOther load during the windows: {} CPUs busy (median, range).",
            others.show(2)
        );
    }
    let inexact = runs.iter().filter(|(_, r)| !r.cpu.exact).count();
    if inexact > 0 {
        let _ = writeln!(
            out,
            "{inexact} of {} windows counted CPU in 10 ms ticks (a thread ended inside the window).",
            runs.len()
        );
    }
    let median = |c, f: fn(&Run) -> f64| summary(runs, c, f).map(|s| s.median);
    let cpu = |r: &Run| r.cpu.seconds;
    if let (Some(b), Some(n), Some(f), Some(k), Some(rss)) = (
        median(Contender::Blippd, cpu),
        median(Contender::NodeExporter, cpu),
        median(Contender::Floor, cpu),
        median(Contender::FloorKept, cpu),
        median(Contender::Blippd, |r| mib(r.memory.peak_kb)),
    ) {
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let _ = writeln!(out, "\nGoals (medians):");
        let _ = writeln!(
            out,
            "- blippd CPU / node_exporter CPU = {:.3} (goal < 0.2): {}",
            b / n,
            verdict(b / n < 0.2)
        );
        for (floor, label) in [(f, "open, read, close"), (k, "kept open, as blippd")] {
            let _ = writeln!(
                out,
                "- blippd CPU / floor ({label}) CPU = {:.2} (goal <= 2): {}",
                b / floor,
                verdict(b / floor <= 2.0)
            );
        }
        let _ = writeln!(
            out,
            "- blippd peak RSS = {rss:.1} MiB (goal < 10 MB = 9.5 MiB): {}",
            verdict(rss * 1024.0 * 1024.0 < 10e6)
        );
        #[expect(clippy::cast_precision_loss, reason = "kB for display")]
        let loading: Vec<f64> = runs
            .iter()
            .filter_map(|(_, r)| r.loading_peak_kb)
            .map(|kb| kb as f64 / 1024.0)
            .collect();
        if let Some(l) = Summary::of(&loading) {
            let _ = writeln!(
                out,
                "  (before that, blippd's loading image peaked at {} MiB while it loaded the eBPF programs; it then re-executes itself, and the peak above is the running image's)",
                l.show(1)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loading_peak_is_read_from_blippds_log() {
        let log = "2026-12-06T20:00:00Z  INFO blipp::arbiter: probe built probe=cpu\n\
                   2026-12-06T20:00:00Z  INFO blipp::arbiter: eBPF programs attached; re-executing to leave the loading memory behind peak_rss_kb=33968 programs=4\n";
        assert_eq!(loading_peak_kb(log), Some(33968));
        assert_eq!(loading_peak_kb("INFO blippd: started\n"), None);
        assert_eq!(
            loading_peak_kb("re-executing peak_rss_kb=unknown programs=4"),
            None
        );
    }
}
