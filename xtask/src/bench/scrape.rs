//! Scraping node_exporter once a second, as a Prometheus server would:
//! HTTP GET of /metrics with Prometheus's `Accept` and `Accept-Encoding:
//! gzip` headers, so the exporter pays for the format and compression it
//! pays for in production. The harness only counts answers; their content
//! is checked once, uncompressed, before the measured window.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                      version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// One GET of `/metrics`; returns the body. `gzip` asks for compression as
/// Prometheus does.
pub fn get_metrics(addr: SocketAddr, gzip: bool) -> Result<Vec<u8>> {
    let timeout = Some(Duration::from_secs(2));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(timeout)?;
    s.set_write_timeout(timeout)?;
    let encoding = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    // HTTP/1.0: the server closes after the body and does not chunk it.
    write!(
        s,
        "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nAccept: {ACCEPT}\r\n{encoding}\
         User-Agent: blipp-bench\r\n\r\n"
    )?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.lines().next().unwrap_or_default();
    if status.split_ascii_whitespace().nth(1) != Some("200") {
        bail!("GET /metrics: {status}");
    }
    Ok(response[split + 4..].to_vec())
}

/// Checks that an uncompressed scrape holds the five collectors' series.
pub fn check_series(body: &[u8]) -> Result<usize> {
    let text = String::from_utf8_lossy(body);
    for name in [
        "node_cpu_seconds_total",
        "node_memory_MemFree_bytes",
        "node_network_receive_bytes_total",
        "node_disk_reads_completed_total",
        "node_load1",
    ] {
        if !text.lines().any(|l| l.starts_with(name)) {
            bail!("node_exporter's answer has no {name}");
        }
    }
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count())
}

/// A thread scraping once a second until stopped.
pub struct Scraper {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    thread: JoinHandle<u64>,
}

impl Scraper {
    /// Starts scraping `addr`.
    pub fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, ok) = (Arc::clone(&stop), Arc::clone(&ok));
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut failed = 0;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    match get_metrics(addr, true) {
                        Ok(_) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => failed += 1,
                    }
                    n += 1;
                    let next = start + Duration::from_secs(n);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < next {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                failed
            })
        };
        Self { stop, ok, thread }
    }

    /// Successful scrapes so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops; returns the number of failed scrapes.
    pub fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(u64::MAX)
    }
}
