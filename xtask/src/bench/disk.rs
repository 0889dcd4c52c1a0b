//! The eBPF disk probe's overhead on the fastest block device at hand: a
//! loop device backed by a file in tmpfs, read at random in 4 KiB blocks
//! with direct I/O by fio. Three sides take turns, the order rotating every
//! round so that drift in the machine's speed hits all alike:
//!
//! - nothing traces the device;
//! - blippd runs only the disk probe, in eBPF mode, every second;
//! - bpftrace runs the classic design of a latency tracer
//!   ([`super::classic`]).
//!
//! Printed: IOPS of every run, the median of each side with its range, and
//! each tracer's loss against no tracer, paired by round. Then the kernel
//! time per run of each BPF program under the same load, from the kernel's
//! run-time statistics: one more run of blippd with its whole default probe
//! set (so every program it loads by default is there), and one of bpftrace
//! with the statistics turned on (they cost a clock read per program run,
//! so bpftrace's IOPS runs go without, as bpftrace runs in production;
//! blippd turns them on for itself whenever it runs).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::bpf_stats::{self, Program, StatsOn};
use super::classic::Classic;
use super::daemon::Daemon;
use super::stats::Summary;
use crate::sh;

/// Options of `cargo xtask bench disk`.
#[derive(Clone, clap::Parser)]
pub struct Args {
    /// Runs on each side.
    #[arg(long, default_value_t = 5)]
    runs: u32,
    /// Seconds per fio run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// fio queue depth.
    #[arg(long, default_value_t = 32)]
    iodepth: u32,
}

/// Debian packages of the load.
pub const PACKAGES: &[&str] = &["fio", "util-linux"];

/// Time a tracer gets to load and attach before the load starts.
const SETTLE: Duration = Duration::from_secs(2);

/// Removes what the benchmark made, in reverse order.
struct LoopOnTmpfs {
    mount: PathBuf,
    loop_dev: Option<String>,
}

impl Drop for LoopOnTmpfs {
    fn drop(&mut self) {
        if let Some(dev) = &self.loop_dev {
            let _ = Command::new("losetup").args(["-d", dev]).status();
        }
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = fs::remove_dir(&self.mount);
    }
}

fn make_loop(mount: &Path) -> Result<LoopOnTmpfs> {
    fs::create_dir_all(mount)?;
    let mut scratch = LoopOnTmpfs {
        mount: mount.to_owned(),
        loop_dev: None,
    };
    sh::run(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1100m", "blipp-bench"])
            .arg(mount),
    )?;
    let file = mount.join("disk.img");
    fs::File::create(&file)?.set_len(1 << 30)?;
    // Fill it, so that reads hit real pages, not holes.
    sh::run(
        Command::new("dd")
            .args(["if=/dev/zero", "bs=1M", "count=1024", "status=none"])
            .arg(format!("of={}", file.display())),
    )?;
    let out = Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&file)
        .output()
        .context("losetup")?;
    if !out.status.success() {
        bail!("losetup: {}", String::from_utf8_lossy(&out.stderr));
    }
    scratch.loop_dev = Some(String::from_utf8(out.stdout)?.trim().to_owned());
    Ok(scratch)
}

/// The read IOPS of fio's JSON report.
pub fn parse_fio_iops(json: &[u8]) -> Result<f64> {
    let v: serde_json::Value = serde_json::from_slice(json).context("fio's JSON")?;
    v["jobs"][0]["read"]["iops"]
        .as_f64()
        .filter(|&iops| iops > 0.0)
        .context("no read IOPS in fio's output")
}

/// One fio run: read IOPS.
fn fio(dev: &str, args: &Args) -> Result<f64> {
    let out = Command::new("fio")
        .args([
            "--name=randread",
            "--rw=randread",
            "--bs=4k",
            "--direct=1",
            "--ioengine=libaio",
            "--numjobs=1",
            "--time_based",
            "--group_reporting",
            "--output-format=json",
        ])
        .arg(format!("--iodepth={}", args.iodepth))
        .arg(format!("--runtime={}", args.seconds))
        .arg(format!("--filename={dev}"))
        .output()
        .context("running fio")?;
    if !out.status.success() {
        bail!("fio: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_fio_iops(&out.stdout)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Without,
    Blippd,
    Classic,
}

const SIDES: [Side; 3] = [Side::Without, Side::Blippd, Side::Classic];

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Without => "no tracer",
            Side::Blippd => "blippd, eBPF disk probe",
            Side::Classic => "bpftrace, classic design",
        }
    }
}

/// blippd with only the disk probe (eBPF) every second.
const DISK_ONLY: &str = r#"{"properties":{"configurations":{
    "probe_defaults":{"schedule_params":{"every":1}},
    "probes":{"disk":{"probe_module":"disk","mode":"ebpf"}}}}}"#;

/// blippd with its built-in probe set every second.
const DEFAULT_PROBES: &str =
    r#"{"properties":{"configurations":{"probe_defaults":{"schedule_params":{"every":1}}}}}"#;

/// A tracer running around one load.
enum Tracer {
    None,
    Blippd { daemon: Daemon, samples: PathBuf },
    Classic(Classic),
}

impl Tracer {
    fn start(side: Side, blippd: &Path, config: &str, dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let tracer = match side {
            Side::Without => Tracer::None,
            Side::Blippd => {
                let file = dir.join("blippd.json");
                fs::write(&file, config)?;
                let samples = dir.join("samples.jsonl");
                let mut cmd = Command::new(blippd);
                cmd.arg("-c")
                    .arg(&file)
                    .stdout(fs::File::create(&samples)?)
                    .stderr(fs::File::create(dir.join("blippd.log"))?);
                Tracer::Blippd {
                    daemon: Daemon::spawn("blippd", &mut cmd)?,
                    samples,
                }
            }
            Side::Classic => Tracer::Classic(Classic::start(dir)?),
        };
        std::thread::sleep(SETTLE);
        Ok(tracer)
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Tracer::None => None,
            Tracer::Blippd { daemon, .. } => Some(daemon.pid()),
            Tracer::Classic(c) => Some(c.pid()),
        }
    }

    /// Stops the tracer and checks that it saw the load: blippd reported
    /// eBPF requests of the loop device, bpftrace's histogram is not empty.
    fn stop(self, dev: &str) -> Result<()> {
        match self {
            Tracer::None => Ok(()),
            Tracer::Blippd { daemon, samples } => {
                daemon.stop()?;
                let name = dev.trim_start_matches("/dev/");
                let subject = format!("\"subject\":\"disk:{name}\"");
                let text = fs::read_to_string(&samples)?;
                if !text
                    .lines()
                    .any(|l| l.contains(&subject) && l.contains("\"source\":\"ebpf\""))
                {
                    bail!("blippd reported no eBPF sample of {name}");
                }
                Ok(())
            }
            Tracer::Classic(c) => c.stop().map(drop),
        }
    }
}

/// One load with one side: fio's IOPS and what the tracer's programs did
/// meanwhile. `config` is blippd's configuration (unused by the others).
fn one_run(
    side: Side,
    blippd: &Path,
    config: &str,
    dev: &str,
    dir: &Path,
    args: &Args,
) -> Result<(f64, Vec<Program>)> {
    let tracer = Tracer::start(side, blippd, config, dir)?;
    let before = match tracer.pid() {
        Some(pid) => bpf_stats::programs_of(pid)?,
        None => Vec::new(),
    };
    let iops = fio(dev, args)?;
    let programs = match tracer.pid() {
        Some(pid) => bpf_stats::between(&before, &bpf_stats::programs_of(pid)?),
        None => Vec::new(),
    };
    tracer.stop(dev)?;
    let _ = fs::remove_dir_all(dir);
    Ok((iops, programs))
}

/// Runs the disk benchmark and prints its figures.
#[expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
pub fn run(args: &Args, blippd: &Path) -> Result<()> {
    let work = super::scratch_dir("disk")?;
    let scratch =
        make_loop(&std::env::temp_dir().join(format!("blipp-bench-{}-mnt", std::process::id())))?;
    let dev = scratch.loop_dev.clone().context("no loop device")?;
    println!(
        "\n## Disk: fio randread 4k direct, iodepth {}, {} s per run, on {dev} (1 GiB in tmpfs); {} runs per side",
        args.iodepth, args.seconds, args.runs
    );
    // Warm-up: the first run of a fresh device is slower.
    fio(
        &dev,
        &Args {
            seconds: 3,
            ..args.clone()
        },
    )?;
    let mut runs: Vec<(u32, Side, f64)> = Vec::new();
    for round in 0..args.runs {
        for i in 0..SIDES.len() {
            let side = SIDES[(i + round as usize) % SIDES.len()];
            let dir = work.join(format!("{side:?}-{round}"));
            let (iops, _) = one_run(side, blippd, DISK_ONLY, &dev, &dir, args)
                .with_context(|| format!("run with {}", side.label()))?;
            println!(
                "  round {:2}  {:<26} {iops:>10.0} IOPS",
                round + 1,
                side.label()
            );
            runs.push((round, side, iops));
        }
    }
    let mut out = overhead_table(&runs);
    let blippd_all = one_run(
        Side::Blippd,
        blippd,
        DEFAULT_PROBES,
        &dev,
        &work.join("blippd-default"),
        args,
    )
    .context("run with blippd's default probes")?;
    let classic = {
        let _stats = StatsOn::new()?;
        one_run(
            Side::Classic,
            blippd,
            "",
            &dev,
            &work.join("classic-stats"),
            args,
        )
        .context("run with bpftrace and BPF statistics")?
    };
    out.push_str(&per_program_table(
        &[
            ("blippd, default probes", blippd_all),
            (Side::Classic.label(), classic),
        ],
        args.seconds,
    ));
    drop(scratch);
    print!("{out}");
    Ok(())
}

fn overhead_table(runs: &[(u32, Side, f64)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n| side | IOPS | loss against no tracer, paired by round |"
    );
    let _ = writeln!(out, "|---|---|---|");
    let baseline = |round: u32| {
        runs.iter()
            .find(|(r, s, _)| *r == round && *s == Side::Without)
            .map(|(_, _, v)| *v)
    };
    let loss = |side: Side| -> Option<Summary> {
        let losses: Vec<f64> = runs
            .iter()
            .filter(|(_, s, _)| *s == side)
            .filter_map(|(r, _, v)| Some((1.0 - v / baseline(*r)?) * 100.0))
            .collect();
        Summary::of(&losses)
    };
    for side in SIDES {
        let iops: Vec<f64> = runs
            .iter()
            .filter(|(_, s, _)| *s == side)
            .map(|(_, _, v)| *v)
            .collect();
        let Some(s) = Summary::of(&iops) else {
            continue;
        };
        let l = match (side, loss(side)) {
            (Side::Without, _) | (_, None) => "—".to_owned(),
            (_, Some(l)) => format!("{} %", l.show(1)),
        };
        let _ = writeln!(out, "| {} | {} | {l} |", side.label(), s.show(0));
    }
    if let (Some(b), Some(c)) = (loss(Side::Blippd), loss(Side::Classic)) {
        // How far the runs without a tracer lie apart: a loss smaller than
        // that is noise, whatever its sign.
        let noise = runs
            .iter()
            .filter(|(_, s, _)| *s == Side::Without)
            .map(|(_, _, v)| *v)
            .collect::<Vec<_>>();
        let noise = Summary::of(&noise).map_or(0.0, |n| (n.max - n.min) / n.median * 100.0);
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let _ = writeln!(
            out,
            "\nGoals (medians; the runs without a tracer differ by up to {noise:.1} % among themselves):"
        );
        let _ = writeln!(
            out,
            "- blippd's loss {:.1} % (goal < 2 %): {}",
            b.median,
            verdict(b.median < 2.0)
        );
        if (b.median - c.median).abs() < noise {
            let _ = writeln!(
                out,
                "- blippd's loss {:.1} % against the classic design's {:.1} %: closer than the noise, so IOPS cannot order them on this machine; the kernel time per request below does",
                b.median, c.median
            );
        } else {
            let _ = writeln!(
                out,
                "- blippd's loss below the classic design's {:.1} %: {}",
                c.median,
                verdict(b.median < c.median)
            );
        }
    }
    out
}

fn per_program_table(rows: &[(&str, (f64, Vec<Program>))], seconds: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Kernel time per BPF program run under the load (one run of {seconds} s each)\n"
    );
    let _ = writeln!(
        out,
        "| tracer | program | runs per s | ns per run | % of one CPU |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    let mut per_request = String::new();
    #[expect(clippy::cast_precision_loss, reason = "counts for display")]
    for (label, (iops, programs)) in rows {
        let secs = seconds as f64;
        let total: u64 = programs.iter().map(|p| p.ns).sum();
        let _ = writeln!(
            per_request,
            "- {label}: {:.0} ns of BPF programs per I/O request ({iops:.0} IOPS in this run)",
            total as f64 / (iops * secs)
        );
        for p in programs {
            let _ = writeln!(
                out,
                "| {label} | {} | {:.0} | {:.0} | {:.2} |",
                p.name,
                p.runs as f64 / secs,
                p.ns as f64 / p.runs as f64,
                p.ns as f64 / secs / 1e9 * 100.0
            );
        }
    }
    let _ = write!(out, "\n{per_request}");
    let per_io = |(_, (iops, programs)): &(&str, (f64, Vec<Program>))| {
        #[expect(clippy::cast_precision_loss, reason = "counts for display")]
        let ns = programs.iter().map(|p| p.ns).sum::<u64>() as f64;
        ns / (iops * seconds as f64)
    };
    if let [blippd, classic] = rows {
        let (b, c) = (per_io(blippd), per_io(classic));
        let _ = writeln!(
            out,
            "- goal: blippd's kernel time per request below the classic design's: {} ({b:.0} ns against {c:.0} ns)",
            if b < c { "met" } else { "MISSED" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fio_iops_from_its_report() {
        let json = include_bytes!("fixtures/fio-randread.json");
        let iops = parse_fio_iops(json).unwrap();
        assert!((iops - 231_053.393_214).abs() < 1e-3, "{iops}");
        assert!(parse_fio_iops(br#"{"jobs":[{"read":{"iops":0}}]}"#).is_err());
        assert!(parse_fio_iops(b"not json").is_err());
    }
}
