//! blippd's Prometheus scrape endpoint against the real thing: Debian's
//! `promtool check metrics` finds nothing to complain about in its
//! exposition, and a real Prometheus scraping it every second (over TLS,
//! with basic authentication, negotiating OpenMetrics and gzip as it does)
//! stores, at the instants blippd collected them, the values blippd wrote
//! to its data file in the same run.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::tls::TlsMaterial;
use blipp_tests::{json_lines, require_tool};
use serde_json::{Value, json};

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over plain HTTP/1.1: (status, head, body).
fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head.to_owned(), body.to_owned()))
}

/// The probes the endpoint is checked with: every built-in one that runs
/// on any host, eBPF where the host allows.
fn probes(every: u64, data: &Path) -> Value {
    let p = |module: &str| json!({"probe_module": module});
    json!({
        "probe_defaults": {"schedule_params": {"every": every}, "data_file": data},
        "probes": {
            "cpu": {"probe_module": "cpu", "percpu": true},
            "mem": p("mem"), "net": p("net"), "disk": p("disk"), "agent": p("agent"),
            "numa": p("numa"), "pressure": p("pressure"),
            "init": {"probe_module": "process", "pid": 1}
        }
    })
}

#[test]
fn promtool_finds_nothing_to_complain_about() {
    if !require_tool("promtool", "checking blippd's exposition") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let mut conf = probes(1, &dir.path().join("samples.jsonl"));
    conf["prometheus"] = json!({"scrape": {"port": port, "bearer_token_file": token}});
    let config = dir.path().join("blipp.json");
    std::fs::write(
        &config,
        json!({"properties": {"configurations": conf}}).to_string(),
    )
    .unwrap();
    let log = dir.path().join("blippd.log");
    let blippd = Blippd::start(&config, &["--control-socket", "none"], &log);
    let auth = [("Authorization", "Bearer s3cret")];
    // Rates, utilizations and the agent's figures of the other probes
    // need a second collection.
    let families = [
        "blipp_cpu_utilization_user{cpu=\"0\"}",
        "blipp_cpu_load_onemin ",
        "blipp_memory_utilization_free_bytes ",
        "blipp_network_tcp_utilization_segments_out_total ",
        "blipp_agent_probe_collect_seconds{probe=\"cpu\"}",
        "blipp_build_info{version=",
        "blipp_probe_last_success_timestamp_seconds{probe=\"mem\"}",
        "# TYPE blipp_disk_requests_read_total counter",
    ];
    wait_for(
        30,
        "every family served",
        || blippd.log(),
        || {
            get(port, "/metrics", &auth)
                .is_some_and(|(_, _, b)| families.iter().all(|f| b.contains(f)))
        },
    );
    let (status, head, body) = get(port, "/metrics", &auth).unwrap();
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}"
    );

    // The token is required, other paths are not served.
    assert_eq!(get(port, "/metrics", &[]).unwrap().0, 401);
    assert_eq!(
        get(port, "/metrics", &[("Authorization", "Bearer s3cre")])
            .unwrap()
            .0,
        401
    );
    assert_eq!(get(port, "/", &auth).unwrap().0, 404);
    // OpenMetrics when asked for.
    let (_, head, om) = get(
        port,
        "/metrics",
        &[
            auth[0],
            ("Accept", "application/openmetrics-text;version=1.0.0"),
        ],
    )
    .unwrap();
    assert!(
        head.contains("application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(om.ends_with("# EOF\n") && om.contains("# TYPE blipp_disk_requests_read counter"));
    blippd.stop();
}

/// A real Prometheus, started on a free port with its own storage.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &Path, scrape_config: &str) -> Self {
        let port = free_port();
        let yml = dir.join("prometheus.yml");
        std::fs::write(
            &yml,
            format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{scrape_config}"),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", yml.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { child, port }
    }

    /// `/api/v1/query` of `query` at `time` (seconds), its result.
    fn query(&self, query: &str, time: f64) -> Option<Vec<Value>> {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("query", query)
            .append_pair("time", &format!("{time:.3}"))
            .finish();
        let (status, _, body) = get(self.port, &format!("/api/v1/query?{q}"), &[])?;
        if status != 200 {
            return None;
        }
        let v: Value =
            serde_json::from_str(body.split("\r\n").find(|l| l.starts_with('{'))?).ok()?;
        v["data"]["result"].as_array().cloned()
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The series compared, as (event type, subject, Prometheus selector,
/// factor from blippd's unit to the exposition's).
const COMPARED: &[(&str, &str, &str, f64)] = &[
    (
        "ps:tools:blipp:linux:cpu:utilization:user",
        "node",
        "blipp_cpu_utilization_user{cpu=\"\"}",
        1.0,
    ),
    (
        "ps:tools:blipp:linux:cpu:utilization:idle",
        "cpu:0",
        "blipp_cpu_utilization_idle{cpu=\"0\"}",
        1.0,
    ),
    (
        "ps:tools:blipp:linux:cpu:load:onemin",
        "node",
        "blipp_cpu_load_onemin",
        1.0,
    ),
    (
        "ps:tools:blipp:linux:memory:utilization:free",
        "node",
        "blipp_memory_utilization_free_bytes",
        1024.0,
    ),
    (
        "ps:tools:blipp:linux:network:tcp:utilization:segments:in",
        "node",
        "blipp_network_tcp_utilization_segments_in_total",
        1.0,
    ),
    (
        "ps:tools:blipp:linux:process:memory:rss",
        "process:1",
        "blipp_process_memory_rss_bytes{process=\"1\"}",
        1024.0,
    ),
];

#[test]
fn a_real_prometheus_stores_blippds_samples() {
    if !require_tool("prometheus", "scraping blippd with a real Prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsMaterial::generate(dir.path()).unwrap();
    let (cert, key, password) = (
        dir.path().join("server.pem"),
        dir.path().join("server.key"),
        dir.path().join("password"),
    );
    std::fs::write(&cert, &tls.server.cert).unwrap();
    std::fs::write(&key, &tls.server.key).unwrap();
    std::fs::write(&password, "scrape-me\n").unwrap();
    let port = free_port();
    let data = dir.path().join("samples.jsonl");
    // Collections every 2 s and scrapes every second: each collection is
    // served for two scrapes, so Prometheus sees every one of them.
    let mut conf = probes(2, &data);
    conf["prometheus"] = json!({"scrape": {
        "port": port,
        "tls": {"cert": cert, "key": key},
        "basic_auth": {"username": "prometheus", "password_file": password}
    }});
    let config = dir.path().join("blipp.json");
    std::fs::write(
        &config,
        json!({"properties": {"configurations": conf}}).to_string(),
    )
    .unwrap();
    let blippd = Blippd::start(
        &config,
        &["--control-socket", "none"],
        &dir.path().join("blippd.log"),
    );
    let prometheus = Prometheus::start(
        dir.path(),
        &format!(
            "  - job_name: blipp\n    scheme: https\n    tls_config:\n      ca_file: {}\n    basic_auth:\n      username: prometheus\n      password_file: {}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n",
            dir.path().join("ca.pem").display(),
            password.display()
        ),
    );
    let plog = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    wait_for(60, "Prometheus ready", plog, || {
        get(prometheus.port, "/-/ready", &[]).is_some_and(|(s, _, _)| s == 200)
    });
    // Prometheus has stored six collections of blippd's.
    wait_for(
        60,
        "six collections stored",
        || format!("{}\n{}", plog(), blippd.log()),
        || {
            prometheus
                .query("count_over_time(blipp_cpu_load_onemin[5m])", now())
                .and_then(|r| {
                    r.first()
                        .and_then(|s| s["value"][1].as_str().map(str::to_owned))
                })
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|n| n >= 6.0)
        },
    );
    let up = prometheus.query("up{job=\"blipp\"}", now()).unwrap();
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    let end = now();
    let samples = json_lines(&std::fs::read_to_string(&data).unwrap());
    let mut compared = 0;
    for (event_type, subject, selector, factor) in COMPARED {
        // The instants Prometheus stored for this series.
        let stored = prometheus
            .query(&format!("{selector}[5m]"), end)
            .unwrap_or_else(|| panic!("{selector}: no answer"));
        assert_eq!(stored.len(), 1, "{selector}: {stored:?}");
        let instants: Vec<f64> = stored[0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_f64().unwrap())
            .collect();
        let (first, last) = (instants[0], instants[instants.len() - 1]);
        let ours: Vec<&Value> = samples
            .iter()
            .filter(|s| s["eventType"] == *event_type && s["subject"] == *subject)
            .collect();
        assert!(
            !ours.is_empty(),
            "blippd wrote no {event_type} of {subject}"
        );
        for s in ours {
            let ts = s["ts"].as_u64().unwrap() / 1000;
            let t = ts as f64 / 1000.0;
            if t < first || t > last {
                continue;
            }
            let want = s["value"].as_f64().unwrap() * factor;
            let got = prometheus
                .query(selector, t)
                .and_then(|r| {
                    r.first()
                        .and_then(|x| x["value"][1].as_str().map(str::to_owned))
                })
                .unwrap_or_else(|| panic!("{selector} at {t}: nothing"));
            let got: f64 = got.parse().unwrap();
            assert!(
                (got - want).abs() <= want.abs() * 1e-12,
                "{selector} at {t}: Prometheus has {got}, blippd wrote {want}"
            );
            assert!(
                instants.iter().any(|i| (i - t).abs() < 1e-6),
                "{selector}: blippd's collection at {t} is not stored at its instant ({instants:?})"
            );
            compared += 1;
        }
    }
    assert!(
        compared >= 2 * COMPARED.len(),
        "only {compared} samples compared"
    );
    drop(prometheus);
    blippd.stop();
}
