//! `cargo xtask bench`: what blipp costs, next to what users would run
//! instead. Figures are printed (the median of alternating runs, with the
//! range), never asserted: they depend on the machine and on its load,
//! which every report names. Each part is a module with a clap `Args` type
//! and a `run`; adding one is a module and a row in [`Part`].

mod aggregate;
mod bpf_stats;
mod classic;
mod daemon;
mod disk;
pub mod floor;
mod machine;
mod measure;
mod prometheus;
mod remote_write;
mod scrape;
mod series;
mod startup;
mod stats;
mod test_server;
mod userspace;

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Parser as _, Subcommand};

use crate::{setup, sh};

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Args {
    /// One part; every part, with its defaults, when omitted.
    #[command(subcommand)]
    part: Option<Part>,
}

/// The parts.
#[derive(Subcommand)]
enum Part {
    /// blippd's CPU time and memory with its default probes at a 1 s
    /// interval, next to node_exporter, collectd and the floor of reading
    /// the same /proc files, alternating.
    Userspace(userspace::Args),
    /// fio 4k random reads (direct I/O) on a tmpfs-backed loop device with
    /// no tracer, with blippd's eBPF disk probe, and with bpftrace running
    /// the classic design, alternating: IOPS ratios, and kernel time per
    /// run of each BPF program under that load.
    Disk(disk::Args),
    /// Requests and wall time of blippd's registration with the UNIS/MS
    /// test server, default probes and 20 probes, first start and restart.
    Startup(startup::Args),
    /// What aggregation costs per sample and per series, next to sending
    /// the samples raw.
    Aggregate(aggregate::Args),
    /// Delivery with many series against the test server with the real
    /// MS's collection delay: a restart with 1000 existing and 10 new
    /// series, and a burst of 1000 new series next to old ones.
    Series(series::Args),
    /// What remote write's encoder costs per sample, next to the JSON
    /// line blipp already writes for each.
    RemoteWrite(remote_write::Args),
    /// CPU per Prometheus scrape of blippd's endpoint (default probes)
    /// next to node_exporter with the matching collectors, alternating.
    Prometheus(prometheus::Args),
}

/// This run's scratch directory, on tmpfs (/dev/shm) where possible so
/// that what the measured processes write costs no disk I/O.
fn scratch_root() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("blipp-bench-{}", std::process::id()))
}

/// A scratch directory for one part, removed with the others when the run
/// ends.
fn scratch_dir(part: &str) -> Result<PathBuf> {
    let dir = scratch_root().join(part);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Removes the scratch directory when dropped, on success or error.
struct Scratch;

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(scratch_root());
    }
}

/// Builds the release blippd and returns its path.
fn build_blippd() -> Result<PathBuf> {
    sh::run(sh::cargo().args(["build", "--release", "-p", "blipp-agent", "--bin", "blippd"]))?;
    Ok(sh::target_dir()?.join("release/blippd"))
}

/// Runs the chosen parts.
#[expect(clippy::print_stdout, reason = "the benchmark's report")]
pub fn run(args: &Args) -> Result<()> {
    setup::build_chain()?;
    let (userspace, disk, startup, series, aggregate, remote_write, prometheus) = match &args.part {
        None => (
            Some(userspace::Args::parse_from(["userspace"])),
            Some(disk::Args::parse_from(["disk"])),
            Some(startup::Args::parse_from(["startup"])),
            Some(series::Args::parse_from(["series"])),
            Some(aggregate::Args::parse_from(["aggregate"])),
            Some(remote_write::Args::parse_from(["remote-write"])),
            Some(prometheus::Args::parse_from(["prometheus"])),
        ),
        Some(Part::Userspace(a)) => (Some(a.clone()), None, None, None, None, None, None),
        Some(Part::Disk(a)) => (None, Some(a.clone()), None, None, None, None, None),
        Some(Part::Startup(a)) => (None, None, Some(a.clone()), None, None, None, None),
        Some(Part::Series(a)) => (None, None, None, Some(a.clone()), None, None, None),
        Some(Part::Aggregate(a)) => (None, None, None, None, Some(a.clone()), None, None),
        Some(Part::RemoteWrite(a)) => (None, None, None, None, None, Some(a.clone()), None),
        Some(Part::Prometheus(a)) => (None, None, None, None, None, None, Some(a.clone())),
    };
    let mut packages: Vec<&str> = Vec::new();
    if userspace.is_some() {
        packages.extend(userspace::PACKAGES);
    }
    if prometheus.is_some() {
        packages.extend(prometheus::PACKAGES);
    }
    if remote_write.is_some() {
        packages.extend(remote_write::PACKAGES);
    }
    if disk.is_some() {
        packages.extend(disk::PACKAGES);
        packages.extend(classic::PACKAGES);
        packages.extend(bpf_stats::PACKAGES);
    }
    setup::apt_without_starting(&packages)?;
    let blippd = build_blippd()?;
    let _scratch = Scratch;
    println!("# blipp benchmark");
    println!("Machine: {}", machine::Machine::this());
    if let Some(a) = userspace {
        let tools = userspace::Tools {
            blippd: blippd.clone(),
            xtask: std::env::current_exe().context("locating xtask")?,
        };
        userspace::run(&a, &tools)?;
    }
    if let Some(a) = disk {
        disk::run(&a, &blippd)?;
    }
    if let Some(a) = startup {
        startup::run(&a, &blippd)?;
    }
    if let Some(a) = series {
        series::run(&a, &blippd)?;
    }
    if let Some(a) = aggregate {
        aggregate::run(&a)?;
    }
    if let Some(a) = remote_write {
        remote_write::run(&a, &blippd)?;
    }
    if let Some(a) = prometheus {
        prometheus::run(&a, &blippd)?;
    }
    println!("\nLoad average after: {}", machine::loadavg());
    Ok(())
}
