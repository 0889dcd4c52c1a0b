//! The eBPF disk probe's overhead on the fastest block device at hand: a
//! loop device backed by a file in tmpfs, read at random in 4 KiB blocks
//! with direct I/O by fio. Runs without blippd and with blippd running only
//! the disk probe (eBPF mode) alternate (A B B A A B ...), so that drift
//! in the machine's speed hits both alike. Printed: IOPS of every run, the
//! median of each side, their ratio and its spread over the pairs, and the
//! kernel time per completion from the BPF run-time statistics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::median;
use crate::{setup, sh};

/// Options of `cargo xtask bench disk`.
#[derive(clap::Args)]
pub struct Args {
    /// Runs on each side.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Seconds per fio run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// fio queue depth.
    #[arg(long, default_value_t = 32)]
    iodepth: u32,
}

/// Removes what the benchmark made, in reverse order.
struct Scratch {
    mount: PathBuf,
    loop_dev: Option<String>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dev) = &self.loop_dev {
            let _ = Command::new("losetup").args(["-d", dev]).status();
        }
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = std::fs::remove_dir(&self.mount);
    }
}

fn make_loop(mount: &Path) -> Result<Scratch> {
    std::fs::create_dir_all(mount)?;
    let mut scratch = Scratch {
        mount: mount.to_owned(),
        loop_dev: None,
    };
    sh::run(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1100m", "blipp-bench"])
            .arg(mount),
    )?;
    let file = mount.join("disk.img");
    std::fs::File::create(&file)?.set_len(1 << 30)?;
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
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("fio's JSON")?;
    v["jobs"][0]["read"]["iops"]
        .as_f64()
        .context("no read IOPS in fio's output")
}

/// blippd with only the disk probe (eBPF) and the agent probe, every
/// second, samples on stdout.
fn start_blippd(bin: &Path, config: &Path) -> Result<Child> {
    let child = Command::new(bin)
        .arg("-c")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting blippd")?;
    // Loading and attaching takes a moment; fio starts after.
    std::thread::sleep(Duration::from_secs(2));
    Ok(child)
}

/// Stops blippd and returns the last (runs, run time ns) of
/// `block_rq_complete` it reported.
fn stop_blippd(child: Child) -> Result<Option<(u64, u64)>> {
    // SIGTERM: blippd flushes its samples and exits.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output()?;
    let mut runs = None;
    let mut time = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["subject"] != "ebpf:block_rq_complete" {
            continue;
        }
        match v["eventType"].as_str() {
            Some("ps:tools:blipp:agent:ebpf:runs") => runs = v["value"].as_u64(),
            Some("ps:tools:blipp:agent:ebpf:run_time_ns") => time = v["value"].as_u64(),
            _ => {}
        }
    }
    Ok(runs.zip(time))
}

#[expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
pub fn run(args: &Args) -> Result<()> {
    setup::build_chain()?;
    setup::apt(&["fio", "util-linux"])?;
    sh::run(sh::cargo().args(["build", "--release", "-p", "blipp-agent", "--bin", "blippd"]))?;
    let bin = PathBuf::from("target/release/blippd");
    let work = std::env::temp_dir().join(format!("blipp-bench-{}", std::process::id()));
    let scratch = make_loop(&work.join("mnt"))?;
    let dev = scratch.loop_dev.clone().context("no loop device")?;
    let config = work.join("blipp.json");
    std::fs::write(
        &config,
        serde_json::json!({"properties": {"configurations": {
            "probe_defaults": {"schedule_params": {"every": 1}},
            "probes": {
                "disk": {"probe_module": "disk", "mode": "ebpf"},
                "agent": {"probe_module": "agent"},
            }
        }}})
        .to_string(),
    )?;
    println!(
        "fio randread 4k direct, iodepth {}, {} s per run, on {dev} (1 GiB in tmpfs); {} runs per side",
        args.iodepth, args.seconds, args.runs
    );
    // Warm-up: the first run of a fresh device is slower.
    fio(
        &dev,
        &Args {
            seconds: 3,
            ..*args
        },
    )?;
    let (mut without, mut with) = (Vec::new(), Vec::new());
    let mut per_event = Vec::new();
    for i in 0..args.runs * 2 {
        // A B B A A B B A ...: each side goes first as often.
        let with_probe = matches!(i % 4, 1 | 2);
        if with_probe {
            let child = start_blippd(&bin, &config)?;
            let iops = fio(&dev, args);
            let stats = stop_blippd(child)?;
            let iops = iops?;
            if let Some((runs, ns)) = stats.filter(|(r, _)| *r > 0) {
                per_event.push(ns as f64 / runs as f64);
            }
            println!("  run {:2}  with blippd     {iops:>10.0} IOPS", i + 1);
            with.push(iops);
        } else {
            let iops = fio(&dev, args)?;
            println!("  run {:2}  without blippd  {iops:>10.0} IOPS", i + 1);
            without.push(iops);
        }
    }
    let ratios: Vec<f64> = without.iter().zip(&with).map(|(a, b)| b / a).collect();
    let (lo, hi) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
    let (m_without, m_with) = (median(&mut without.clone()), median(&mut with.clone()));
    println!("median IOPS without blippd: {m_without:.0}");
    println!("median IOPS with blippd:    {m_with:.0}");
    println!(
        "ratio with/without: {:.4} (throughput change {:+.2}%), per-pair ratios {lo:.4}..{hi:.4}",
        m_with / m_without,
        (m_with / m_without - 1.0) * 100.0
    );
    if per_event.is_empty() {
        println!("kernel time per completion: unknown (no BPF run-time statistics)");
    } else {
        let mut pe = per_event.clone();
        println!(
            "kernel time per completion (block_rq_complete, BPF stats): median {:.0} ns, runs {:?}",
            median(&mut pe),
            per_event
                .iter()
                .map(|v| v.round() as u64)
                .collect::<Vec<_>>()
        );
    }
    drop(scratch);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
