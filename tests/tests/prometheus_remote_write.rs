//! Remote write against a real Prometheus (Debian's `prometheus`, with
//! `--web.enable-remote-write-receiver`): every sample blippd collects —
//! as its data file has them — is found in Prometheus through its HTTP
//! API, with the same value and millisecond, including those collected
//! while Prometheus was stopped for 30 s (spooled, then delivered in
//! order once it was back).

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use blipp::report::prometheus::catalog::Catalog;
use blipp::sample::{Name, Sample, Source, Timestamp, Value as SampleValue};
use blipp_tests::prom_receiver::{self, Prometheus};
use blipp_tests::{daemon, skip};
use serde_json::{Value, json};

/// A series' labels (with `__name__`) and a millisecond.
type Key = (BTreeMap<String, String>, i64);

const HOST: &str = "rw-test-host";

fn status(socket: &Path) -> Value {
    let v: Value = serde_json::from_str(&daemon::blippcmd(socket, &["status", "--json"])).unwrap();
    v["remote_write"][0].clone()
}

fn sample_of(line: &Value) -> Sample {
    let value = match &line["value"] {
        Value::Number(n) if n.is_u64() => SampleValue::Int(n.as_u64().unwrap()),
        Value::Number(n) => SampleValue::Float(n.as_f64().unwrap()),
        Value::String(s) => SampleValue::Text(Name::from(s.as_str())),
        other => panic!("a sample value: {other}"),
    };
    Sample::new(
        Timestamp(line["ts"].as_u64().unwrap()),
        &Name::from(line["subject"].as_str().unwrap()),
        &Name::from(line["eventType"].as_str().unwrap()),
        value,
        Source::from_name(line["source"].as_str().unwrap()).unwrap(),
    )
}

/// What Prometheus should hold for the samples of `data_file`, by the
/// names module's mapping: of one series and millisecond, the last.
fn expected(data_file: &Path) -> BTreeMap<Key, f64> {
    let mut catalog = Catalog::new();
    let mut out = BTreeMap::new();
    let text = std::fs::read_to_string(data_file).unwrap();
    for line in text.lines() {
        let sample = sample_of(&serde_json::from_str(line).unwrap());
        let Some(found) = catalog.lookup(&sample) else {
            continue;
        };
        let series = catalog.series(found.series);
        let mut labels: BTreeMap<String, String> = series
            .labels
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.to_string()))
            .collect();
        labels.insert(
            "__name__".into(),
            catalog.family(series.family).sample_name(),
        );
        labels.entry("host".into()).or_insert_with(|| HOST.into());
        let ms = i64::try_from(sample.ts.0 / 1000).unwrap();
        out.insert((labels, ms), found.value);
    }
    out
}

/// Every raw sample of blipp's series in Prometheus.
fn stored(p: &Prometheus) -> BTreeMap<Key, f64> {
    let mut out = BTreeMap::new();
    for series in p.raw_samples(r#"{__name__=~"blipp_.+"}"#, "1h") {
        let labels: BTreeMap<String, String> =
            serde_json::from_value(series["metric"].clone()).unwrap();
        for point in series["values"].as_array().unwrap() {
            let ms = (point[0].as_f64().unwrap() * 1000.0).round() as i64;
            let v: f64 = point[1].as_str().unwrap().parse().unwrap();
            out.insert((labels.clone(), ms), v);
        }
    }
    out
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

#[test]
fn every_sample_reaches_prometheus_across_a_30_s_outage() {
    if prom_receiver::binary().is_none() {
        skip::skip(
            "remote write to a real Prometheus",
            "prometheus (Debian package)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir(&prom_dir).unwrap();
    let mut prometheus = Prometheus::start(&prom_dir);
    let data_file = dir.path().join("samples.jsonl");
    let config = json!({"properties": {"configurations": {
        "spool_dir": dir.path().join("spool"),
        "prometheus": {"remote_write": [{
            "url": prometheus.write_url(),
            "external_labels": {"host": HOST},
            "batch_max_samples": 200,
            "batch_max_age": 1
        }]},
        "probe_defaults": {"schedule_params": {"every": 1}, "mode": "proc",
                           "data_file": data_file},
        "probes": {"cpu": {"probe_module": "cpu"}, "mem": {"probe_module": "mem"},
                   "net": {"probe_module": "net"}, "disk": {"probe_module": "disk"}}
    }}});
    let cfg = dir.path().join("blipp.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let socket = dir.path().join("run/blippd.sock");
    let blippd = daemon::Blippd::start(
        &cfg,
        &["--control-socket", socket.to_str().unwrap()],
        &dir.path().join("blippd.log"),
    );
    let log = || blippd.log();
    daemon::wait_for(60, "a first delivery", log, || {
        socket.exists() && status(&socket)["sent_samples"].as_u64() > Some(0)
    });

    prometheus.stop();
    let down = Instant::now();
    let down_ms = now_ms();
    // blippd notices, and keeps what it collects on disk.
    daemon::wait_for(30, "failed deliveries and a spool", log, || {
        let s = status(&socket);
        s["failures"].as_u64() > Some(0) && s["spooled_bytes"].as_u64() > Some(0)
    });
    let sent_before = status(&socket)["sent_samples"].as_u64().unwrap();
    // The outage itself lasts 30 s.
    std::thread::sleep(Duration::from_secs(30).saturating_sub(down.elapsed()));
    let up_ms = now_ms();
    prometheus.restart();
    daemon::wait_for(90, "the spool delivered after the outage", log, || {
        let s = status(&socket);
        s["sent_samples"].as_u64() > Some(sent_before)
            && s["spooled_bytes"].as_u64() == Some(0)
            && s["pending_samples"].as_u64() == Some(0)
    });
    let s = status(&socket);
    assert_eq!(s["refused_samples"], 0, "{s}");
    // Stopping delivers what is still waiting.
    let log = blippd.stop();

    let expected = expected(&data_file);
    let during = expected
        .keys()
        .filter(|(_, ms)| (down_ms..up_ms).contains(ms))
        .count();
    assert!(
        during > 100,
        "only {during} samples collected during the outage"
    );
    let stored = stored(&prometheus);
    let missing: Vec<_> = expected
        .iter()
        .filter(|(k, v)| {
            stored
                .get(*k)
                .is_none_or(|s| s != *v && !(s.is_nan() && v.is_nan()))
        })
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} samples missing or different in Prometheus, e.g. {missing:?}\nblippd log:\n{log}",
        expected
            .iter()
            .filter(|(k, v)| stored.get(*k) != Some(*v))
            .count(),
        expected.len()
    );
    let extra: Vec<_> = stored
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        extra.is_empty(),
        "samples blippd did not collect: {extra:?}"
    );
}

/// What the README says of a request sent again because its answer was
/// lost: Prometheus stores nothing twice. A request equal to the newest
/// samples of its series is accepted again; one holding older samples of
/// a series is refused whole with 400 (which blippd counts as refused,
/// not retried); either way each sample is stored once.
#[test]
fn a_request_sent_again_is_stored_once() {
    use blipp::report::remote_write::encode::Encoder;
    if prom_receiver::binary().is_none() {
        skip::skip(
            "remote write to a real Prometheus",
            "prometheus (Debian package)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path());
    let now_us = u64::try_from(now_ms()).unwrap() * 1000;
    let load = Name::from("ps:tools:blipp:linux:cpu:load:onemin");
    let node = Name::from("node");
    let sample = |ago_s: u64, v: f64| {
        Sample::new(
            Timestamp(now_us - ago_s * 1_000_000),
            &node,
            &load,
            SampleValue::Float(v),
            Source::Proc,
        )
    };
    let mut encoder = Encoder::new(vec![("host".into(), HOST.into())]);
    let three = [sample(30, 1.0), sample(20, 2.0), sample(10, 3.0)];
    let body = encoder.encode(&three).0.to_vec();
    assert_eq!(prometheus.write(&body).0, 204);
    let (code, answer) = prometheus.write(&body);
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("out of order"), "{answer}");
    let newest = encoder.encode(&three[2..]).0.to_vec();
    assert_eq!(prometheus.write(&newest).0, 204, "the newest sample again");
    let stored = prometheus.raw_samples("blipp_cpu_load_onemin", "1h");
    assert_eq!(stored.len(), 1, "{stored:?}");
    let values: Vec<&str> = stored[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap())
        .collect();
    assert_eq!(values, ["1", "2", "3"]);
}
