//! Scale of series and probes: blippd's userspace cost as the work grows,
//! one dimension at a time, everything else as small as it goes:
//!
//! - disks: n loop devices of numbers of their own (each read once, since
//!   devices that never saw I/O are not reported), removed afterwards, the
//!   `disk` probe;
//! - interfaces: n veth interfaces in a network namespace of their own
//!   (their peers in another), blippd run inside it with the `net` probe;
//! - processes: n `sleep` processes, each followed by its own `process`
//!   probe;
//! - probes: n `mem` probes.
//!
//! Every probe collects once a second. After blippd's first collections,
//! one window is measured: its CPU time (from /proc/PID, as in the
//! userspace part), the samples it wrote and the distinct series among
//! them, and its resident memory at the window's end. Printed per
//! dimension: the figures per n, CPU per sample and memory per series with
//! their slope from the smallest to the largest n (flat means no work that
//! grows faster than the series), and the largest n that stays under 1 %
//! of one CPU.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead as _, BufReader, Seek as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::daemon::Daemon;
use super::measure;
use crate::sh;

/// Options of `cargo xtask bench scale`.
#[derive(Clone, clap::Parser)]
pub struct Args {
    /// Seconds per measured window.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// The sizes of each dimension (processes stop at 500).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
    sizes: Vec<usize>,
}

/// Debian packages: losetup (util-linux), ip (iproute2).
pub const PACKAGES: &[&str] = &["util-linux", "iproute2"];

const NETNS: &str = "blipp-bench-scale";
/// Where the veth interfaces' peers go.
const PEER_NETNS: &str = "blipp-bench-scale-peer";
const MAX_PROCESSES: usize = 500;
/// The first loop device number the part uses, far above what hosts
/// usually have.
const LOOP_BASE: usize = 20_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dimension {
    Disks,
    Interfaces,
    Processes,
    Probes,
}

const DIMENSIONS: [Dimension; 4] = [
    Dimension::Disks,
    Dimension::Interfaces,
    Dimension::Processes,
    Dimension::Probes,
];

impl Dimension {
    fn label(self) -> &'static str {
        match self {
            Dimension::Disks => "loop devices (disk probe)",
            Dimension::Interfaces => "veth interfaces (net probe)",
            Dimension::Processes => "followed processes (one process probe each)",
            Dimension::Probes => "mem probes",
        }
    }
}

/// What one size of one dimension needs on the host, undone when dropped.
#[derive(Default)]
struct Setup {
    loops: Vec<String>,
    mount: Option<PathBuf>,
    netns: bool,
    sleepers: Vec<Child>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for dev in &self.loops {
            let _ = Command::new("losetup").args(["-d", dev]).status();
            remove_loop(dev);
        }
        if let Some(m) = &self.mount {
            let _ = Command::new("umount").arg(m).status();
            let _ = fs::remove_dir(m);
        }
        if self.netns {
            for ns in [NETNS, PEER_NETNS] {
                let _ = Command::new("ip").args(["netns", "del", ns]).status();
            }
        }
        for c in &mut self.sleepers {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Removes a detached loop device (`LOOP_CTL_REMOVE`), counters and all.
fn remove_loop(dev: &str) {
    const LOOP_CTL_REMOVE: libc::c_ulong = 0x4C81;
    let Some(n) = dev
        .strip_prefix("/dev/loop")
        .and_then(|n| n.parse::<libc::c_ulong>().ok())
    else {
        return;
    };
    let Ok(control) = fs::OpenOptions::new().write(true).open("/dev/loop-control") else {
        return;
    };
    // SAFETY: LOOP_CTL_REMOVE takes the device number by value and only
    // touches kernel state; the descriptor is open for the call.
    unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&control),
            LOOP_CTL_REMOVE,
            n,
        );
    }
}

/// Prepares `n` of `dim` and returns blippd's probes for them.
fn prepare(dim: Dimension, n: usize, dir: &Path, setup: &mut Setup) -> Result<serde_json::Value> {
    use serde_json::json;
    let mut probes = serde_json::Map::new();
    match dim {
        Dimension::Disks => {
            let mount = dir.join("loops");
            fs::create_dir_all(&mount)?;
            sh::run(
                Command::new("mount")
                    .args(["-t", "tmpfs", "-o", "size=64m", "blipp-bench-scale"])
                    .arg(&mount),
            )?;
            setup.mount = Some(mount.clone());
            for i in 0..n {
                let file = mount.join(format!("d{i}"));
                fs::File::create(&file)?.set_len(1 << 20)?;
                // Numbers of its own, removed afterwards: a loop device
                // keeps its counters after it is detached, and the disk
                // probe would report the host's free ones for good.
                let dev = format!("/dev/loop{}", LOOP_BASE + i);
                sh::run(Command::new("losetup").arg(&dev).arg(&file))?;
                // One read, so that the device has I/O to report.
                let mut f = fs::File::open(&dev).with_context(|| format!("opening {dev}"))?;
                std::io::Read::read(&mut f, &mut [0u8; 512])?;
                setup.loops.push(dev);
            }
            probes.insert("disk".into(), json!({"probe_module": "disk"}));
        }
        Dimension::Interfaces => {
            for ns in [NETNS, PEER_NETNS] {
                let _ = Command::new("ip")
                    .args(["netns", "del", ns])
                    .stderr(Stdio::null())
                    .status();
                sh::run(Command::new("ip").args(["netns", "add", ns]))?;
            }
            setup.netns = true;
            // One `ip -batch` for all: n separate commands take minutes.
            let batch: String = (0..n)
                .map(|i| {
                    format!(
                        "link add bd{i} type veth peer name bp{i} netns {PEER_NETNS}\nlink set bd{i} up\n"
                    )
                })
                .collect();
            let file = dir.join("links.batch");
            fs::write(&file, batch)?;
            sh::run(Command::new("ip").args(["-n", NETNS, "-batch"]).arg(&file))?;
            probes.insert("net".into(), json!({"probe_module": "net"}));
        }
        Dimension::Processes => {
            for i in 0..n {
                let child = Command::new("sleep")
                    .arg("3600")
                    .spawn()
                    .context("starting sleep")?;
                probes.insert(
                    format!("p{i}"),
                    json!({"probe_module": "process", "pid": child.id()}),
                );
                setup.sleepers.push(child);
            }
        }
        Dimension::Probes => {
            for i in 0..n {
                probes.insert(format!("m{i}"), json!({"probe_module": "mem"}));
            }
        }
    }
    Ok(json!({"properties": {"configurations": {
        "probe_defaults": {"schedule_params": {"every": 1}},
        "probes": probes,
    }}}))
}

/// One size's figures.
struct Figures {
    n: usize,
    series: usize,
    samples_per_s: f64,
    cpu_percent: f64,
    rss_kb: u64,
}

impl Figures {
    fn us_per_sample(&self) -> f64 {
        self.cpu_percent / 100.0 * 1e6 / self.samples_per_s.max(f64::MIN_POSITIVE)
    }
}

/// Counts the samples appended to blippd's output, and their series.
struct Window {
    reader: BufReader<fs::File>,
    line: String,
}

impl Window {
    fn new(path: &Path) -> Result<Self> {
        let mut reader = BufReader::new(fs::File::open(path)?);
        reader.seek(std::io::SeekFrom::End(0))?;
        Ok(Self {
            reader,
            line: String::new(),
        })
    }

    /// Counts the complete lines appended since the last call and adds
    /// their series to `series`.
    fn read(&mut self, series: &mut HashSet<String>) -> Result<u64> {
        let mut samples = 0;
        loop {
            self.line.clear();
            let pos = self.reader.stream_position()?;
            if self.reader.read_line(&mut self.line)? == 0 {
                return Ok(samples);
            }
            if !self.line.ends_with('\n') {
                self.reader.seek(std::io::SeekFrom::Start(pos))?;
                return Ok(samples);
            }
            if let Some(key) = series_key(&self.line) {
                samples += 1;
                if !series.contains(key) {
                    series.insert(key.to_owned());
                }
            }
        }
    }
}

/// The series of a sample line: its subject and event type, as written.
pub fn series_key(line: &str) -> Option<&str> {
    let start = line.find("\"subject\":")?;
    let rest = &line[start..];
    let end = rest.find("\"value\":")?;
    Some(&rest[..end])
}

fn measure_one(
    dim: Dimension,
    n: usize,
    blippd: &Path,
    work: &Path,
    args: &Args,
) -> Result<Figures> {
    let dir = work.join(format!("{dim:?}-{n}"));
    fs::create_dir_all(&dir)?;
    let mut setup = Setup::default();
    let config = prepare(dim, n, &dir, &mut setup)?;
    let file = dir.join("blippd.json");
    fs::write(&file, config.to_string())?;
    let samples = dir.join("samples.jsonl");
    let mut cmd = if dim == Dimension::Interfaces {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", NETNS]).arg(blippd);
        c
    } else {
        Command::new(blippd)
    };
    cmd.arg("-c")
        .arg(&file)
        .stdout(fs::File::create(&samples)?)
        .stderr(fs::File::create(dir.join("blippd.log"))?);
    let mut daemon = Daemon::spawn("blippd", &mut cmd)?;
    // blippd's pid: `ip netns exec` execs it in place, so it is the child.
    let pid = daemon.pid();
    // Warm: three seconds of collections after the first sample.
    let deadline = Instant::now() + Duration::from_secs(60);
    while fs::metadata(&samples).map_or(0, |m| m.len()) == 0 {
        daemon
            .check_running()
            .with_context(|| fs::read_to_string(dir.join("blippd.log")).unwrap_or_default())?;
        if Instant::now() > deadline {
            bail!("blippd wrote no sample within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3));
    let mut window = Window::new(&samples)?;
    let mut series = HashSet::new();
    let cpu0 = measure::cpu_snapshot(pid)?;
    let start = Instant::now();
    let mut count = 0;
    while start.elapsed() < Duration::from_secs(args.seconds) {
        std::thread::sleep(Duration::from_millis(500));
        count += window.read(&mut series)?;
    }
    let cpu = measure::cpu_used(&cpu0, &measure::cpu_snapshot(pid)?);
    let elapsed = start.elapsed().as_secs_f64();
    count += window.read(&mut series)?;
    let rss_kb = measure::memory(pid)?.now_kb;
    daemon.check_running()?;
    daemon.stop()?;
    drop(setup);
    let _ = fs::remove_dir_all(&dir);
    #[expect(clippy::cast_precision_loss, reason = "a count for a rate")]
    Ok(Figures {
        n,
        series: series.len(),
        samples_per_s: count as f64 / elapsed,
        cpu_percent: cpu.seconds / elapsed * 100.0,
        rss_kb,
    })
}

/// Runs the part and prints its figures.
#[expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
pub fn run(args: &Args, blippd: &Path) -> Result<()> {
    let work = super::scratch_dir("scale")?;
    let devices = fs::read_to_string("/proc/diskstats").map_or(0, |t| t.lines().count());
    println!(
        "\n## Scale of series and probes: every probe at 1 s, a {} s window per size",
        args.seconds
    );
    println!(
        "The host has {devices} block devices in /proc/diskstats before; the disk probe reports those that saw I/O beside the part's own."
    );
    let mut out = String::new();
    for dim in DIMENSIONS {
        let mut rows = Vec::new();
        for &n in &args.sizes {
            let n = if dim == Dimension::Processes {
                n.min(MAX_PROCESSES)
            } else {
                n
            };
            if rows.iter().any(|r: &Figures| r.n == n) {
                continue;
            }
            let f = measure_one(dim, n, blippd, &work, args)
                .with_context(|| format!("{} = {n}", dim.label()))?;
            println!(
                "  {:<44} n = {n:>5}: {:>6} series, {:>8.0} samples/s, {:>6.2} % CPU, {:>7} kB RSS",
                dim.label(),
                f.series,
                f.samples_per_s,
                f.cpu_percent,
                f.rss_kb
            );
            rows.push(f);
        }
        out.push_str(&table(dim, &rows));
    }
    print!("{out}");
    Ok(())
}

#[expect(clippy::cast_precision_loss, reason = "figures for display")]
fn table(dim: Dimension, rows: &[Figures]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n### {}\n", dim.label());
    let _ = writeln!(
        out,
        "| n | series | samples/s | CPU, % of one CPU | µs CPU per sample | RSS, MiB | kB RSS per added n | kB RSS per added series |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let first = rows.first();
    for r in rows {
        let per_series = match first {
            Some(f) if r.series > f.series => format!(
                "{:.1}",
                (r.rss_kb as f64 - f.rss_kb as f64) / (r.series - f.series) as f64
            ),
            _ => "—".to_owned(),
        };
        let per_n = match first {
            Some(f) if r.n > f.n => format!(
                "{:.1}",
                (r.rss_kb as f64 - f.rss_kb as f64) / (r.n - f.n) as f64
            ),
            _ => "—".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.2} | {:.1} | {:.1} | {per_n} | {per_series} |",
            r.n,
            r.series,
            r.samples_per_s,
            r.cpu_percent,
            r.us_per_sample(),
            r.rss_kb as f64 / 1024.0
        );
    }
    if let (Some(a), Some(b)) = (rows.get(1), rows.last())
        && b.n > a.n
    {
        // From the second size on: the smallest carries blippd's fixed cost.
        let _ = writeln!(
            out,
            "\nCPU per sample from n = {} to n = {}: {:.1} µs to {:.1} µs ({:+.0} %).",
            a.n,
            b.n,
            a.us_per_sample(),
            b.us_per_sample(),
            (b.us_per_sample() / a.us_per_sample() - 1.0) * 100.0
        );
    }
    match rows
        .iter()
        .filter(|r| r.cpu_percent < 1.0)
        .map(|r| r.n)
        .max()
    {
        Some(n) => {
            let _ = writeln!(out, "Largest n under 1 % of one CPU: {n}.");
        }
        None => {
            let _ = writeln!(out, "No size stayed under 1 % of one CPU.");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_is_its_subject_and_event_type() {
        let a =
            r#"{"ts":1,"subject":"disk:loop3","eventType":"ps:x:iops","value":4,"source":"proc"}"#;
        let b =
            r#"{"ts":2,"subject":"disk:loop3","eventType":"ps:x:iops","value":5,"source":"proc"}"#;
        assert_eq!(series_key(a), series_key(b));
        assert_eq!(
            series_key(a),
            Some(r#""subject":"disk:loop3","eventType":"ps:x:iops","#)
        );
        assert_eq!(series_key("{}"), None);
    }

    #[test]
    fn cpu_per_sample() {
        let f = Figures {
            n: 1,
            series: 10,
            samples_per_s: 100.0,
            cpu_percent: 1.0,
            rss_kb: 0,
        };
        assert!((f.us_per_sample() - 100.0).abs() < 1e-9);
    }
}
