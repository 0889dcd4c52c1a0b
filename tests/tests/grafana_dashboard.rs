//! The Grafana dashboard (`packaging/grafana/blipp-host.json`) queries only
//! families blippd exposes: with the probes that produce them running
//! (eBPF ones included, with disk I/O for the latency percentiles, and the
//! programs' run time asked for), every
//! metric name of every query and template variable is in blippd's
//! exposition.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use blipp_tests::daemon::{Blippd, wait_for};
use blipp_tests::require_root;
use serde_json::{Value, json};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.to_owned())
}

/// Every `blipp_...` name in the dashboard's queries and variables.
fn names_in(dashboard: &Value) -> BTreeSet<String> {
    let mut queries = Vec::new();
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr" | "query" | "definition", Value::String(s)) => out.push(s),
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(dashboard, &mut queries);
    let mut names = BTreeSet::new();
    for q in queries {
        let mut rest = q;
        while let Some(i) = rest.find("blipp_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    names
}

/// Direct reads and writes of one block on the disk under `dir`, so that
/// the disk program has latencies to report.
fn disk_io(path: &Path) {
    let mut buf = vec![0u8; 8192];
    let offset = buf.as_ptr().align_offset(4096);
    let block = &mut buf[offset..offset + 4096];
    block.fill(7);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .unwrap();
    f.write_all(block).unwrap();
    f.sync_all().unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .unwrap();
    std::os::unix::fs::FileExt::read_exact_at(&f, block, 0).unwrap();
}

#[test]
fn every_name_the_dashboard_queries_is_exposed() {
    if !require_root("the eBPF probes whose families the dashboard shows") {
        return;
    }
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/grafana/blipp-host.json"),
    )
    .unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let names = names_in(&dashboard);
    assert!(names.len() > 30, "{names:?}");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // A process of ours to follow: its io file is readable to blippd.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let config = dir.path().join("blipp.json");
    std::fs::write(
        &config,
        json!({"properties": {"configurations": {
            "prometheus": {"scrape": {"port": port}},
            "probe_defaults": {"schedule_params": {"every": 1}},
            "probes": {
                "cpu": {"probe_module": "cpu", "percpu": true},
                "mem": {"probe_module": "mem"},
                "net": {"probe_module": "net", "mode": "ebpf"},
                "disk": {"probe_module": "disk", "mode": "ebpf"},
                "pressure": {"probe_module": "pressure"},
                "sleeper": {"probe_module": "process", "pid": sleeper.id()},
                "procevents": {"probe_module": "procevents", "mode": "ebpf", "events": false},
                "agent": {"probe_module": "agent", "ebpf_run_time": true}
            }
        }}})
        .to_string(),
    )
    .unwrap();
    let blippd = Blippd::start(
        &config,
        &["--control-socket", "none"],
        &dir.path().join("log"),
    );
    // On the disk of the build directory, which is a real one (a
    // temporary directory may be tmpfs).
    let io = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let missing = |body: &str| -> Vec<String> {
        names
            .iter()
            .filter(|n| {
                !body.lines().any(|l| {
                    l.strip_prefix(n.as_str())
                        .is_some_and(|r| r.starts_with(['{', ' ']))
                })
            })
            .cloned()
            .collect()
    };
    let last = std::cell::RefCell::new(Vec::new());
    wait_for(
        60,
        "every name of the dashboard exposed",
        || format!("missing: {:?}\n{}", last.borrow(), blippd.log()),
        || {
            disk_io(&io.path().join("block"));
            let body = scrape(port).unwrap_or_default();
            *last.borrow_mut() = missing(&body);
            last.borrow().is_empty()
        },
    );
    blippd.stop();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}
