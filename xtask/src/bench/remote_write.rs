//! Part 7, remote write: the encoder's CPU per sample
//! (`blipp-agent/examples/remote_write_bench.rs`, release build) on
//! requests of 2000 samples made of what the default probes report on
//! the fixture host tree (`blippd --once --mode proc --proc-dir
//! tests/data/host/proc`), next to the JSON line blipp writes for each
//! sample to its data file, stdout and the MS spool.
//!
//! Why not next to what a user would run instead: the usual way to get
//! host metrics into a remote-write receiver is node_exporter scraped by
//! Prometheus (or its agent mode), which then encodes and sends; that
//! cost is in another process, on other samples (node_exporter's
//! families), with a WAL between, so a per-sample figure would compare
//! different work. The comparison that answers "what does enabling remote
//! write add to blippd" is against what blippd already pays per sample.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::daemon::Daemon;
use super::{measure, stats::Summary};
use crate::sh;

/// Options of `cargo xtask bench remote-write`.
#[derive(Clone, clap::Parser)]
pub struct Args {
    /// Rounds of blippd with and without a remote-write destination.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 30)]
    window: u64,
}

/// The Debian package of the receiver.
pub const PACKAGES: &[&str] = &["prometheus"];

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// `GET path` on loopback `port`: the status code and body.
fn get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status")?;
    Ok((code, body.to_owned()))
}

/// A Prometheus with its remote-write receiver, ready.
fn receiver(dir: &Path) -> Result<(Daemon, u16)> {
    let port = free_port()?;
    fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 15s\n",
    )?;
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!(
        "--config.file={}",
        dir.join("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        dir.join("tsdb").display()
    ))
    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
    .arg("--web.enable-remote-write-receiver")
    .stdout(Stdio::null())
    .stderr(fs::File::create(dir.join("prometheus.log"))?);
    let mut daemon = Daemon::spawn("prometheus", &mut cmd)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !get(port, "/-/ready").is_ok_and(|(c, _)| c == 200) {
        daemon.check_running()?;
        if Instant::now() > deadline {
            bail!("prometheus not ready within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((daemon, port))
}

/// One run of blippd (default probes every second, samples to a file):
/// its CPU seconds over `window` after a warm-up, and the samples it
/// collected meanwhile.
fn run_blippd(
    blippd: &Path,
    dir: &Path,
    url: Option<&str>,
    window: Duration,
) -> Result<(f64, u64)> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let mut conf = serde_json::json!({"properties": {"configurations": {
        "spool_dir": dir.join("spool"),
        "probe_defaults": {"schedule_params": {"every": 1}}
    }}});
    if let Some(url) = url {
        conf["properties"]["configurations"]["prometheus"] =
            serde_json::json!({"remote_write": [{"url": url}]});
    }
    let config = dir.join("blippd.json");
    fs::write(&config, conf.to_string())?;
    let samples = dir.join("samples.jsonl");
    let mut cmd = Command::new(blippd);
    cmd.arg("--config-file")
        .arg(&config)
        .args(["--control-socket", "none"])
        .stdout(fs::File::create(&samples)?)
        .stderr(fs::File::create(dir.join("blippd.log"))?);
    let mut daemon = Daemon::spawn("blippd", &mut cmd)?;
    let lines = || -> Result<u64> { Ok(fs::read_to_string(&samples)?.lines().count() as u64) };
    // Warm-up: the probes' first collections (and the sink's first
    // request) happen before the window.
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines()? == 0 {
        daemon.check_running()?;
        if Instant::now() > deadline {
            bail!("blippd printed nothing within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(6));
    let (n0, c0) = (lines()?, measure::cpu_snapshot(daemon.pid())?);
    std::thread::sleep(window);
    let (n1, c1) = (lines()?, measure::cpu_snapshot(daemon.pid())?);
    daemon.check_running()?;
    daemon.stop()?;
    Ok((measure::cpu_used(&c0, &c1).seconds, n1 - n0))
}

/// Runs it and prints the table.
#[expect(clippy::print_stdout, reason = "the benchmark's report")]
pub fn run(args: &Args, blippd: &std::path::Path) -> Result<()> {
    sh::run(sh::cargo().args([
        "build",
        "--release",
        "-p",
        "blipp-agent",
        "--example",
        "remote_write_bench",
    ]))?;
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/host/proc");
    let once = std::process::Command::new(blippd)
        .args(["--once", "--mode", "proc", "--proc-dir"])
        .arg(&fixture)
        .args(["--control-socket", "none"])
        .output()
        .with_context(|| format!("running {}", blippd.display()))?;
    anyhow::ensure!(
        once.status.success(),
        "blippd --once: {}",
        String::from_utf8_lossy(&once.stderr)
    );
    let bin = sh::target_dir()?.join("release/examples/remote_write_bench");
    let mut child = std::process::Command::new(&bin)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", bin.display()))?;
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().context("stdin")?;
        stdin.write_all(&once.stdout)?;
    }
    let out = child.wait_with_output()?;
    let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "remote_write_bench printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let range = |k: &str| {
        format!(
            "{:.0}–{:.0}",
            v[k][0].as_f64().unwrap_or(f64::NAN),
            v[k][1].as_f64().unwrap_or(f64::NAN)
        )
    };
    println!(
        "\n## Remote write (requests of {} samples; the default probes' {} samples per collection on the fixture host, {:.0}% exported, {} series; CPU time, median of {} alternating rounds, range)\n",
        v["samples_per_request"],
        v["samples_per_collection"],
        f("exported_fraction") * 100.0,
        v["series"],
        v["rounds"]
    );
    println!("| encoding | ns/sample | range | bytes/sample |");
    println!("|---|---|---|---|");
    println!(
        "| remote write (series look-up, sort, protobuf, snappy) | {:.0} | {} | {:.1} |",
        f("remote_write_ns_per_sample"),
        range("remote_write_ns_range"),
        f("remote_write_bytes_per_sample")
    );
    println!(
        "| JSON line (data file, stdout, MS spool) | {:.0} | {} | {:.1} |",
        f("json_ns_per_sample"),
        range("json_ns_range"),
        f("json_bytes_per_sample")
    );
    whole_daemon(args, blippd)
}

/// blippd with and without a remote-write destination (a real Prometheus
/// receiver on loopback), alternating.
#[expect(clippy::print_stdout, reason = "the benchmark's report")]
fn whole_daemon(args: &Args, blippd: &Path) -> Result<()> {
    let dir = super::scratch_dir("remote-write")?;
    let prom_dir = dir.join("prometheus");
    fs::create_dir_all(&prom_dir)?;
    let (prometheus, port) = receiver(&prom_dir)?;
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let window = Duration::from_secs(args.window);
    let (mut without, mut with, mut samples) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let order: [Option<&str>; 2] = if round % 2 == 0 {
            [None, Some(&url)]
        } else {
            [Some(&url), None]
        };
        for url in order {
            let (cpu, n) = run_blippd(blippd, &dir.join("blippd"), url, window)?;
            samples.push(n as f64);
            if url.is_some() {
                with.push(cpu);
            } else {
                without.push(cpu);
            }
        }
    }
    let (code, body) = get(
        port,
        "/api/v1/query?query=count(%7B__name__%3D~%22blipp_.%2B%22%7D)",
    )?;
    drop(prometheus);
    let (w, wo, n) = (
        Summary::of(&with).context("no rounds")?,
        Summary::of(&without).context("no rounds")?,
        Summary::of(&samples).context("no rounds")?,
    );
    println!(
        "\n### blippd with and without remote write ({} rounds of {} s, default probes every second, {:.0} samples per window; receiver: Prometheus on loopback, answer to a count of blipp series: HTTP {code} {})\n",
        args.rounds,
        args.window,
        n.median,
        body.trim()
    );
    println!("| blippd | CPU s per window |");
    println!("|---|---|");
    println!("| without remote write | {} |", wo.show(4));
    println!("| with remote write | {} |", w.show(4));
    println!(
        "\nDifference of the medians: {:.1} µs per sample ({:.4} s per window).",
        (w.median - wo.median) / n.median * 1e6,
        w.median - wo.median
    );
    Ok(())
}
