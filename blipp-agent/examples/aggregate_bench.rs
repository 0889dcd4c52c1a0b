//! What aggregation costs per sample and per series, next to what sending
//! the same samples raw costs at the least (serialising each as the JSON
//! the sinks write), for `cargo xtask bench aggregate`. Prints one JSON
//! object: medians of alternating rounds.

use std::time::Instant;

use blipp::report::aggregate::{AggregateSpec, Aggregator};
use blipp::sample::{Name, Sample, Source, Timestamp, Value};

/// Resident memory, bytes (/proc/self/statm, pages of 4 KiB).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[expect(
    clippy::print_stdout,
    reason = "the bench prints its figures for xtask"
)]
fn main() {
    let series: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let rounds = 5;
    let collections = 60u64;
    let spec = AggregateSpec::from_json(&serde_json::json!({
        "window": {"collections": collections},
        "summaries": [{"match": "*", "stats": ["mean", "max", "p99", "rate"]}]
    }))
    .expect("the bench's aggregate settings are valid");
    let subjects: Vec<Name> = (0..series)
        .map(|i| Name::from(format!("disk:d{i}")))
        .collect();
    let event_type = Name::from("ps:tools:blipp:linux:disk:utilization:bytes:read");
    let batch = |c: u64| -> Vec<Sample> {
        subjects
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Sample::new(
                    Timestamp(c * 1_000_000),
                    s,
                    &event_type,
                    Value::Int(c * 4096 + i as u64),
                    Source::Proc,
                )
            })
            .collect()
    };
    let batches: Vec<Vec<Sample>> = (0..collections).map(batch).collect();
    let per_round = (collections as usize * series) as f64;
    let mut aggregate_ns = Vec::new();
    let mut raw_ns = Vec::new();
    let before = rss();
    let mut aggregator = Aggregator::new(spec.clone());
    let mut out = Vec::new();
    // A first window creates the series (their one allocation each).
    for (c, b) in batches.iter().enumerate() {
        aggregator.collected(Timestamp(c as u64 * 1_000_000), b, &mut out);
    }
    let per_series = rss().saturating_sub(before) as f64 / series as f64;
    let mut json = Vec::with_capacity(1 << 20);
    for round in 0..rounds {
        let run_aggregate = |aggregator: &mut Aggregator, out: &mut Vec<Sample>| {
            out.clear();
            let t = Instant::now();
            for (c, b) in batches.iter().enumerate() {
                let ts = Timestamp((round * collections + c as u64) * 1_000_000);
                aggregator.collected(ts, b, out);
            }
            t.elapsed().as_nanos() as f64 / per_round
        };
        let run_raw = |json: &mut Vec<u8>| {
            let t = Instant::now();
            for b in &batches {
                json.clear();
                for s in b {
                    serde_json::to_writer(&mut *json, s).expect("a sample serialises");
                    json.push(b'\n');
                }
            }
            t.elapsed().as_nanos() as f64 / per_round
        };
        // Alternate which goes first.
        if round % 2 == 0 {
            aggregate_ns.push(run_aggregate(&mut aggregator, &mut out));
            raw_ns.push(run_raw(&mut json));
        } else {
            raw_ns.push(run_raw(&mut json));
            aggregate_ns.push(run_aggregate(&mut aggregator, &mut out));
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "series": series,
            "collections_per_window": collections,
            "stats": "mean, max, p99, rate",
            "aggregate_ns_per_sample": median(aggregate_ns),
            "raw_json_ns_per_sample": median(raw_ns),
            "bytes_per_series": per_series,
            "summaries_per_window": out.len(),
        })
    );
}
