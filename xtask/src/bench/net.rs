//! Network at line rate: what per-packet BPF programs take from traffic
//! over a veth pair between two network namespaces (the fastest path a
//! packet takes through the stack without hardware). iperf3 runs three
//! loads: TCP with one stream, TCP with four, and UDP datagrams of 64
//! bytes with no rate limit (packets per second at the receiver).
//!
//! Three sides take turns, the order rotating every round: no tracer;
//! blippd with only the `net` probe (eBPF, every second); and the classic
//! per-packet design in bpftrace (`netclassic.bt`: a hash keyed by the
//! interface's name, updated for packets and bytes on every receive and
//! transmit).
//!
//! Printed per load: throughput and loss against no tracer, paired by
//! round. Then, from the kernel's run-time statistics, the nanoseconds per
//! run of each tracer's programs under the UDP load (one more run each,
//! since the statistics cost a clock read per run).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::bpf_stats::{self, Program, StatsOn};
use super::classic;
use super::daemon::Daemon;
use super::paired::{self, Run};
use crate::sh;

/// Options of `cargo xtask bench net`.
#[derive(Clone, clap::Parser)]
pub struct Args {
    /// Rounds (each runs every side once per load).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds per iperf3 run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

/// Debian packages of the load and the classic design.
pub const PACKAGES: &[&str] = &["iperf3", "iproute2", "bpftrace", "bpftool"];

/// The classic design's script.
const SCRIPT: &str = include_str!("netclassic.bt");

/// blippd with only the net probe, eBPF, every second.
const CONFIG: &str = r#"{"properties":{"configurations":{
    "probe_defaults":{"schedule_params":{"every":1}},
    "probes":{"net":{"probe_module":"net","mode":"ebpf"}}}}}"#;

const SERVER_NS: &str = "blipp-bench-srv";
const CLIENT_NS: &str = "blipp-bench-cli";
const SERVER_ADDR: &str = "10.213.7.1";
const CLIENT_ADDR: &str = "10.213.7.2";
const PORT: &str = "5399";
/// UDP payload bytes of the packets/s load.
const SMALL: u32 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Load {
    Tcp1,
    Tcp4,
    UdpSmall,
}

const LOADS: [Load; 3] = [Load::Tcp1, Load::Tcp4, Load::UdpSmall];

impl Load {
    fn label(self) -> &'static str {
        match self {
            Load::Tcp1 => "TCP, 1 stream (Gbit/s)",
            Load::Tcp4 => "TCP, 4 streams (Gbit/s)",
            Load::UdpSmall => "UDP, 64-byte datagrams (packets/s received)",
        }
    }

    fn args(self) -> Vec<String> {
        match self {
            Load::Tcp1 => vec![],
            Load::Tcp4 => vec!["-P".into(), "4".into()],
            Load::UdpSmall => vec![
                "-u".into(),
                "-l".into(),
                SMALL.to_string(),
                "-b".into(),
                "0".into(),
            ],
        }
    }

    /// One iperf3 run from the client namespace: its throughput. With two
    /// CPUs or more the client runs on CPU 0 and the server on CPU 1, so
    /// that every run takes the same path (where the scheduler puts the
    /// two decides how much of the receive path runs beside the sender,
    /// which changed the throughput of runs without a tracer by 10-35 %).
    fn run(self, seconds: u64) -> Result<f64> {
        let pinned = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
        let out = Command::new("ip")
            .args(["netns", "exec", CLIENT_NS, "iperf3", "-c", SERVER_ADDR])
            .args(["-p", PORT, "-J", "-t", &seconds.to_string()])
            .args(if pinned { &["-A", "0,1"][..] } else { &[] })
            .args(self.args())
            .output()
            .context("running iperf3")?;
        if !out.status.success() {
            bail!(
                "iperf3: {}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        parse_iperf3(&out.stdout, self == Load::UdpSmall)
    }
}

/// iperf3's JSON report: received Gbit/s for TCP, received packets/s for
/// UDP (sent minus lost, over the run's seconds).
pub fn parse_iperf3(json: &[u8], udp: bool) -> Result<f64> {
    let v: serde_json::Value = serde_json::from_slice(json).context("iperf3's JSON")?;
    let r = &v["end"]["sum_received"];
    let value = if udp {
        let packets = r["packets"].as_f64().context("no packets")?;
        let lost = r["lost_packets"].as_f64().context("no lost_packets")?;
        let seconds = r["seconds"].as_f64().context("no seconds")?;
        (packets - lost) / seconds
    } else {
        r["bits_per_second"]
            .as_f64()
            .context("no bits_per_second")?
            / 1e9
    };
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        bail!("iperf3 reported no traffic")
    }
}

/// Two namespaces joined by a veth pair, and an iperf3 server in one;
/// removed when dropped.
struct Link {
    _server: Option<Daemon>,
}

impl Link {
    fn new() -> Result<Self> {
        Self::remove();
        for ns in [SERVER_NS, CLIENT_NS] {
            sh::run(Command::new("ip").args(["netns", "add", ns]))?;
            sh::run(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]))?;
        }
        sh::run(Command::new("ip").args([
            "link", "add", "bbsrv", "netns", SERVER_NS, "type", "veth", "peer", "name", "bbcli",
            "netns", CLIENT_NS,
        ]))?;
        for (ns, dev, addr) in [
            (SERVER_NS, "bbsrv", SERVER_ADDR),
            (CLIENT_NS, "bbcli", CLIENT_ADDR),
        ] {
            sh::run(
                Command::new("ip")
                    .args(["-n", ns, "addr", "add", &format!("{addr}/24")])
                    .args(["dev", dev]),
            )?;
            sh::run(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]))?;
        }
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            SERVER_NS,
            "iperf3",
            "-s",
            "-B",
            SERVER_ADDR,
            "-p",
            PORT,
        ])
        .stdout(std::process::Stdio::null());
        let mut server = Daemon::spawn("iperf3 -s", &mut cmd)?;
        // Ready when a client can connect: a short run.
        let deadline = Instant::now() + Duration::from_secs(20);
        while Load::Tcp1.run(1).is_err() {
            server.check_running()?;
            if Instant::now() > deadline {
                bail!("the iperf3 server did not answer within 20 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self {
            _server: Some(server),
        })
    }

    fn remove() {
        for ns in [SERVER_NS, CLIENT_NS] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self._server = None;
        Self::remove();
    }
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
            Side::Blippd => "blippd, net probe",
            Side::Classic => "bpftrace, classic per-packet design",
        }
    }
}

/// A tracer running around one load.
struct Tracer {
    daemon: Option<Daemon>,
    side: Side,
    dir: std::path::PathBuf,
}

impl Tracer {
    fn start(side: Side, blippd: &Path, dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let daemon = match side {
            Side::Without => None,
            Side::Blippd => {
                let file = dir.join("blippd.json");
                fs::write(&file, CONFIG)?;
                let samples = dir.join("samples.jsonl");
                let mut cmd = Command::new(blippd);
                cmd.arg("-c")
                    .arg(&file)
                    .stdout(fs::File::create(&samples)?)
                    .stderr(fs::File::create(dir.join("blippd.log"))?);
                let mut d = Daemon::spawn("blippd", &mut cmd)?;
                // Attached once it reports its first eBPF sample.
                wait_until(&mut d, 30, || {
                    fs::read_to_string(&samples).is_ok_and(|t| t.contains("\"source\":\"ebpf\""))
                })?;
                Some(d)
            }
            Side::Classic => Some(classic::run_script(dir, "netclassic.bt", SCRIPT, 2)?.0),
        };
        Ok(Self {
            daemon,
            side,
            dir: dir.to_owned(),
        })
    }

    fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Daemon::pid)
    }

    /// Stops the tracer and checks that it saw the veth's traffic.
    fn stop(self) -> Result<()> {
        let Some(d) = self.daemon else {
            return Ok(());
        };
        d.stop()?;
        let (file, want) = match self.side {
            Side::Without => return Ok(()),
            Side::Blippd => ("samples.jsonl", "\"source\":\"ebpf\""),
            Side::Classic => ("bpftrace.out", "bbsrv"),
        };
        let text = fs::read_to_string(self.dir.join(file))?;
        if !text.contains(want) {
            bail!(
                "{} measured nothing ({file} has no {want})",
                self.side.label()
            );
        }
        Ok(())
    }
}

fn wait_until(daemon: &mut Daemon, secs: u64, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ready() {
        daemon.check_running()?;
        if Instant::now() > deadline {
            bail!("not ready within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// One load with one side: the throughput, and the tracer's programs'
/// run-time statistics over the load (empty when they are off).
fn one_run(
    side: Side,
    load: Load,
    blippd: &Path,
    dir: &Path,
    seconds: u64,
) -> Result<(f64, Vec<Program>)> {
    let tracer = Tracer::start(side, blippd, dir)?;
    let before = match tracer.pid() {
        Some(pid) => bpf_stats::programs_of(pid)?,
        None => Vec::new(),
    };
    let value = load.run(seconds)?;
    let programs = match tracer.pid() {
        Some(pid) => bpf_stats::between(&before, &bpf_stats::programs_of(pid)?),
        None => Vec::new(),
    };
    tracer.stop()?;
    let _ = fs::remove_dir_all(dir);
    Ok((value, programs))
}

/// Runs the part and prints its figures.
#[expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
pub fn run(args: &Args, blippd: &Path) -> Result<()> {
    let work = super::scratch_dir("net")?;
    let link = Link::new()?;
    println!(
        "\n## Network at line rate: iperf3 over a veth pair between two namespaces, {} s per run, {} rounds",
        args.seconds, args.rounds
    );
    let mut out = String::new();
    for load in LOADS {
        let mut runs = Vec::new();
        for round in 0..args.rounds {
            for i in paired::order(SIDES.len(), round) {
                let side = SIDES[i];
                let dir = work.join(format!("{load:?}-{side:?}-{round}"));
                let (value, _) = one_run(side, load, blippd, &dir, args.seconds)
                    .with_context(|| format!("{} with {}", load.label(), side.label()))?;
                println!(
                    "  {:<46} round {:2}  {:<36} {value:>12.2}",
                    load.label(),
                    round + 1,
                    side.label()
                );
                runs.push(Run {
                    round,
                    side: i,
                    value,
                });
            }
        }
        out.push_str(&table(load, &runs));
    }
    let _stats = StatsOn::new()?;
    let mut per_packet = String::new();
    let _ = writeln!(
        per_packet,
        "\n### Kernel time per BPF program run under the UDP load (one run of {} s each, statistics on)\n",
        args.seconds
    );
    let _ = writeln!(
        per_packet,
        "| tracer | program | runs per s | ns per run |\n|---|---|---|---|"
    );
    #[expect(clippy::cast_precision_loss, reason = "counts for display")]
    for side in [Side::Blippd, Side::Classic] {
        let (_, programs) = one_run(
            side,
            Load::UdpSmall,
            blippd,
            &work.join(format!("stats-{side:?}")),
            args.seconds,
        )
        .with_context(|| format!("the statistics run with {}", side.label()))?;
        for p in programs.iter().filter(|p| p.runs > 0) {
            let _ = writeln!(
                per_packet,
                "| {} | {} | {:.0} | {:.0} |",
                side.label(),
                p.name,
                p.runs as f64 / args.seconds as f64,
                p.ns as f64 / p.runs as f64
            );
        }
    }
    drop(link);
    print!("{out}{per_packet}");
    Ok(())
}

fn table(load: Load, runs: &[Run]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n### {}\n", load.label());
    let _ = writeln!(out, "| side | throughput | loss, paired by round |");
    let _ = writeln!(out, "|---|---|---|");
    for (i, side) in SIDES.iter().enumerate() {
        let Some(t) = paired::throughput(runs, i) else {
            continue;
        };
        let decimals = if load == Load::UdpSmall { 0 } else { 2 };
        let loss = match paired::loss(runs, i) {
            Some(l) if i > 0 => format!("{} %", l.show(1)),
            _ => "—".to_owned(),
        };
        let _ = writeln!(out, "| {} | {} | {loss} |", side.label(), t.show(decimals));
    }
    let _ = writeln!(
        out,
        "\nThe baseline runs differ by up to {:.1} % among themselves.",
        paired::noise(runs)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iperf3_reports() {
        let udp = br#"{"end":{"sum_received":{"seconds":2.0,"bytes":9761152,"bits_per_second":39035337.1,"lost_packets":131602,"packets":284120}}}"#;
        assert_eq!(parse_iperf3(udp, true).unwrap(), 76_259.0);
        let tcp = br#"{"end":{"sum_received":{"seconds":2.0,"bits_per_second":4.5e10}}}"#;
        assert_eq!(parse_iperf3(tcp, false).unwrap(), 45.0);
        assert!(parse_iperf3(br#"{"end":{}}"#, false).is_err());
        assert!(
            parse_iperf3(
                br#"{"end":{"sum_received":{"seconds":1,"packets":5,"lost_packets":5}}}"#,
                true
            )
            .is_err()
        );
    }
}
