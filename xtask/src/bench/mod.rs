//! `cargo xtask bench`: what blipp costs, next to what users would run
//! instead. Figures are printed (the median of alternating runs, with the
//! range), never asserted: they depend on the machine and on its load,
//! which every report names. Each part is a module with a clap `Args` type
//! and a `run`; adding one is a module, a variant of [`Part`] and its arm
//! in each of `Part`'s methods.

mod aggregate;
mod bpf_stats;
mod classic;
mod daemon;
mod disk;
mod first_sample;
pub mod floor;
mod machine;
mod measure;
mod net;
mod paired;
mod procevents;
mod prometheus;
mod remote_write;
mod scale;
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
#[derive(Clone, Subcommand)]
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
    /// A fork/exec storm (stress-ng --fork, --exec, a bash loop) with no
    /// tracer, with blippd's procevents probe and with bpftrace printing
    /// every event (the classic design), alternating: throughput loss,
    /// events seen and lost, CPU per event.
    Procevents(procevents::Args),
    /// iperf3 over a veth pair (TCP 1 and 4 streams, small UDP packets)
    /// with no tracer, with blippd's net probe and with a classic
    /// per-packet bpftrace counter, alternating: throughput loss, and
    /// kernel time per BPF program run.
    Net(net::Args),
    /// blippd's CPU per sample and memory per series as disks,
    /// interfaces, followed processes and probes grow from 1 to 1000.
    Scale(scale::Args),
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

impl Part {
    /// Every part, with its defaults, in the order `cargo xtask bench`
    /// runs them.
    fn all() -> Vec<Part> {
        vec![
            Part::Userspace(userspace::Args::parse_from(["userspace"])),
            Part::Disk(disk::Args::parse_from(["disk"])),
            Part::Startup(startup::Args::parse_from(["startup"])),
            Part::Series(series::Args::parse_from(["series"])),
            Part::Aggregate(aggregate::Args::parse_from(["aggregate"])),
            Part::Procevents(procevents::Args::parse_from(["procevents"])),
            Part::Net(net::Args::parse_from(["net"])),
            Part::Scale(scale::Args::parse_from(["scale"])),
            Part::RemoteWrite(remote_write::Args::parse_from(["remote-write"])),
            Part::Prometheus(prometheus::Args::parse_from(["prometheus"])),
        ]
    }

    /// The Debian packages the part runs or compares with.
    fn packages(&self) -> Vec<&'static str> {
        match self {
            Part::Userspace(_) => userspace::PACKAGES.to_vec(),
            Part::Disk(_) => [disk::PACKAGES, classic::PACKAGES, bpf_stats::PACKAGES].concat(),
            Part::Startup(_) | Part::Series(_) | Part::Aggregate(_) => Vec::new(),
            Part::Procevents(_) => procevents::PACKAGES.to_vec(),
            Part::Net(_) => net::PACKAGES.to_vec(),
            Part::Scale(_) => scale::PACKAGES.to_vec(),
            Part::RemoteWrite(_) => remote_write::PACKAGES.to_vec(),
            Part::Prometheus(_) => prometheus::PACKAGES.to_vec(),
        }
    }

    fn run(&self, blippd: &std::path::Path) -> Result<()> {
        match self {
            Part::Userspace(a) => {
                let tools = userspace::Tools {
                    blippd: blippd.to_owned(),
                    xtask: std::env::current_exe().context("locating xtask")?,
                };
                userspace::run(a, &tools)
            }
            Part::Disk(a) => disk::run(a, blippd),
            Part::Startup(a) => startup::run(a, blippd),
            Part::Series(a) => series::run(a, blippd),
            Part::Aggregate(a) => aggregate::run(a),
            Part::Procevents(a) => procevents::run(a, blippd),
            Part::Net(a) => net::run(a, blippd),
            Part::Scale(a) => scale::run(a, blippd),
            Part::RemoteWrite(a) => remote_write::run(a, blippd),
            Part::Prometheus(a) => prometheus::run(a, blippd),
        }
    }
}

/// Runs the chosen parts.
#[expect(clippy::print_stdout, reason = "the benchmark's report")]
pub fn run(args: &Args) -> Result<()> {
    setup::build_chain()?;
    let parts = args.part.clone().map_or_else(Part::all, |p| vec![p]);
    let mut packages: Vec<&str> = parts.iter().flat_map(Part::packages).collect();
    packages.sort_unstable();
    packages.dedup();
    setup::apt_without_starting(&packages)?;
    let blippd = build_blippd()?;
    let _scratch = Scratch;
    println!("# blipp benchmark");
    println!("Machine: {}", machine::Machine::this());
    for part in &parts {
        part.run(&blippd)?;
    }
    println!("\nLoad average after: {}", machine::loadavg());
    Ok(())
}
