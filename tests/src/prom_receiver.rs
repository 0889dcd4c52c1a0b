//! A real Prometheus (Debian's `prometheus`) with its remote-write
//! receiver, on a free loopback port and a temporary storage directory,
//! that can be stopped and started again on the same storage; and its
//! HTTP API, read with plain HTTP/1.0.

#![expect(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The `prometheus` binary, if installed (`cargo xtask setup`).
pub fn binary() -> Option<PathBuf> {
    which("prometheus")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// A Prometheus server.
pub struct Prometheus {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Starts one with its storage in `dir`, and waits until it is ready.
    pub fn start(dir: &Path) -> Self {
        std::fs::write(
            dir.join("prometheus.yml"),
            "global:\n  scrape_interval: 15s\n",
        )
        .unwrap();
        let mut p = Self {
            child: None,
            dir: dir.to_owned(),
            port: free_port(),
        };
        p.launch();
        p
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("prometheus.log"))
            .unwrap();
        let child = Command::new(binary().expect("prometheus is installed"))
            .arg(format!(
                "--config.file={}",
                self.dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--web.enable-remote-write-receiver")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        crate::daemon::wait_for(
            120,
            "Prometheus to be ready",
            || self.log(),
            || self.get("/-/ready").is_some_and(|(code, _)| code == 200),
        );
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The remote-write URL.
    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    /// Stops it with SIGTERM and waits until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = i32::try_from(child.id()).unwrap();
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "prometheus exited with {status}:\n{}",
                self.log()
            );
        }
    }

    /// Starts it again on the same storage and port.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// `GET path` on its HTTP port: the status code and body, or `None`
    /// when it does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body.to_owned()))
    }

    /// POSTs a remote-write body (snappy-compressed protobuf) as blippd
    /// does: the status code and the body of the answer.
    pub fn write(&self, body: &[u8]) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "POST /api/v1/write HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Encoding: snappy\r\n\
             Content-Type: application/x-protobuf\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, answer) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, answer.to_owned())
    }

    /// Every raw sample of the series `selector` matches, at most `range`
    /// (e.g. `1h`) old: the `data.result` of an instant query of a range
    /// vector.
    pub fn raw_samples(&self, selector: &str, range: &str) -> Vec<Value> {
        let query: String =
            url::form_urlencoded::byte_serialize(format!("{selector}[{range}]").as_bytes())
                .collect();
        let (code, body) = self
            .get(&format!("/api/v1/query?query={query}"))
            .expect("prometheus answers");
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
