//! What remote write costs per sample, for `cargo xtask bench
//! remote-write`: the encoder (series look-up, sort, protobuf, snappy) on
//! requests of 2000 samples (the default `batch_max_samples`) made of the
//! default probes' samples read from standard input (JSON lines, as
//! blippd prints them), next to the JSON line the data file, stdout and
//! the MS sink's spool pay for each sample. CPU time of this thread, so
//! that other processes' load counts as little as it can. Prints one JSON
//! object: medians and ranges of alternating rounds.

use std::io::BufRead as _;

use blipp::report::remote_write::encode::Encoder;
use blipp::report::sink::json_line;
use blipp::sample::{Name, Sample, Source, Timestamp, Value};

/// CPU time of this thread, ns.
fn thread_cpu_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    u128::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u128::try_from(ts.tv_nsec).unwrap_or(0)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn sample(line: &serde_json::Value) -> Option<Sample> {
    let value = match &line["value"] {
        serde_json::Value::Number(n) if n.is_u64() => Value::Int(n.as_u64()?),
        serde_json::Value::Number(n) => Value::Float(n.as_f64()?),
        serde_json::Value::String(s) => Value::Text(Name::from(s.as_str())),
        _ => return None,
    };
    Some(Sample::new(
        Timestamp(line["ts"].as_u64()?),
        &Name::from(line["subject"].as_str()?),
        &Name::from(line["eventType"].as_str()?),
        value,
        Source::from_name(line["source"].as_str()?)?,
    ))
}

#[expect(
    clippy::print_stdout,
    reason = "the bench prints its figures for xtask"
)]
fn main() {
    let collection: Vec<Sample> = std::io::stdin()
        .lock()
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .filter_map(|v| sample(&v))
        .collect();
    assert!(!collection.is_empty(), "no samples on standard input");
    let per_request = 2000;
    let rounds = 11;
    let requests_per_round = 50;
    // Collections one second apart, as a probe every second makes them,
    // until a round's requests are filled.
    let needed = per_request * requests_per_round;
    let mut samples = Vec::with_capacity(needed + collection.len());
    let mut c = 0u64;
    while samples.len() < needed {
        // Values move as they do on a live host (counters grow, gauges
        // wander), so that snappy does not see the same bytes again.
        samples.extend(collection.iter().map(|s| {
            let mut s = s.clone();
            s.ts = Timestamp(s.ts.0 + c * 1_000_000);
            s.value = match s.value {
                Value::Int(v) => Value::Int(v + c * 4099),
                Value::Float(v) => Value::Float(v * (1.0 + (c % 13) as f64 * 0.0137)),
                text @ Value::Text(_) => text,
            };
            s
        }));
        c += 1;
    }
    samples.truncate(needed);
    let mut encoder = Encoder::new(vec![("host".to_owned(), "bench".to_owned())]);
    // The first pass creates the series (their one allocation each).
    let mut bytes = 0usize;
    let mut exported = 0usize;
    for request in samples.chunks(per_request) {
        let (body, counts) = encoder.encode(request);
        bytes += body.len();
        exported += counts.sent;
    }
    let mut json = Vec::with_capacity(1 << 20);
    let mut json_bytes = 0usize;
    for s in &samples {
        json.clear();
        json_line(&mut json, s);
        json_bytes += json.len();
    }
    let n = samples.len() as f64;
    let mut rw = Vec::new();
    let mut js = Vec::new();
    let run_rw = |encoder: &mut Encoder| {
        let t = thread_cpu_ns();
        let mut sink = 0usize;
        for request in samples.chunks(per_request) {
            sink += encoder.encode(request).0.len();
        }
        std::hint::black_box(sink);
        (thread_cpu_ns() - t) as f64 / n
    };
    let run_json = |json: &mut Vec<u8>| {
        let t = thread_cpu_ns();
        for request in samples.chunks(per_request) {
            json.clear();
            for s in request {
                json_line(json, s);
            }
            std::hint::black_box(&json);
        }
        (thread_cpu_ns() - t) as f64 / n
    };
    for round in 0..rounds {
        if round % 2 == 0 {
            rw.push(run_rw(&mut encoder));
            js.push(run_json(&mut json));
        } else {
            js.push(run_json(&mut json));
            rw.push(run_rw(&mut encoder));
        }
    }
    let (rw, js) = (sorted(rw), sorted(js));
    println!(
        "{}",
        serde_json::json!({
            "samples_per_collection": collection.len(),
            "samples_per_request": per_request,
            "exported_fraction": exported as f64 / n,
            "series": encoder.catalog().len(),
            "rounds": rounds,
            "remote_write_ns_per_sample": rw[rw.len() / 2],
            "remote_write_ns_range": [rw[0], rw[rw.len() - 1]],
            "json_ns_per_sample": js[js.len() / 2],
            "json_ns_range": [js[0], js[js.len() - 1]],
            "remote_write_bytes_per_sample": bytes as f64 / n,
            "json_bytes_per_sample": json_bytes as f64 / n,
        })
    );
}
