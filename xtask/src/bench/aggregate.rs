//! Part 6, aggregation: what summarising costs per sample and per series
//! (`blipp-agent/examples/aggregate_bench.rs`, release build), next to the
//! least that sending the same samples raw costs (serialising each one as
//! the JSON a sink writes), for 100 and 10,000 series.

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::sh;

/// Options of `cargo xtask bench aggregate`.
#[derive(Clone, clap::Parser)]
pub struct Args {
    /// Series counts to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [100usize, 10_000])]
    series: Vec<usize>,
}

/// Runs it and prints the table.
#[expect(clippy::print_stdout, reason = "the benchmark's report")]
pub fn run(args: &Args) -> Result<()> {
    sh::run(sh::cargo().args([
        "build",
        "--release",
        "-p",
        "blipp-agent",
        "--example",
        "aggregate_bench",
    ]))?;
    let bin = sh::target_dir()?.join("release/examples/aggregate_bench");
    println!("\n## Aggregation (window of 60 collections; mean, max, p99, rate per series)\n");
    println!("| series | aggregate, ns/sample | raw JSON, ns/sample | memory per series |");
    println!("|---|---|---|---|");
    for n in &args.series {
        let out = std::process::Command::new(&bin)
            .arg(n.to_string())
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "aggregate_bench printed {:?}",
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
        println!(
            "| {n} | {:.0} | {:.0} | {:.0} B |",
            v["aggregate_ns_per_sample"].as_f64().unwrap_or(f64::NAN),
            v["raw_json_ns_per_sample"].as_f64().unwrap_or(f64::NAN),
            v["bytes_per_series"].as_f64().unwrap_or(f64::NAN),
        );
    }
    Ok(())
}
