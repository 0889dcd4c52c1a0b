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

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::sh;

/// Options of `cargo xtask bench remote-write`.
#[derive(Clone, clap::Parser)]
pub struct Args {}

/// Runs it and prints the table.
#[expect(clippy::print_stdout, reason = "the benchmark's report")]
pub fn run(_args: &Args, blippd: &std::path::Path) -> Result<()> {
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
    Ok(())
}
