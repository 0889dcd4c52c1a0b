//! One remote-write destination: a task that receives every probe's
//! batches, sends them in requests of at most `batch_max_samples`, at the
//! latest `batch_max_age` after the oldest waiting sample arrived, and
//! loses none to an outage.
//!
//! No loss, as the MS sink: reports wait in memory (each probe's
//! `reporting_tolerance`), older ones and everything while deliveries fail
//! go to the destination's own disk spool (`<spool_dir>/remote_write/<url
//! as a file name>/`), which is delivered first, in order, when the
//! receiver answers again; at shutdown what could not be sent within
//! [`FINAL_DELIVERY`] stays in the spool for the next start.
//!
//! What an answer means: 2xx delivered; 429, 5xx, a timeout or a broken
//! connection are retried with back-off (doubling from
//! [`RETRY`] to [`RETRY_MAX`], or the receiver's `Retry-After` when it is
//! longer); any other 4xx is a permanent refusal of that request's
//! samples: logged with the receiver's reason, counted, and not sent
//! again (resending what a receiver refuses would block everything behind
//! it forever).
//!
//! Exactly once, as far as the protocol allows: remote write has no
//! acknowledgement beyond the HTTP answer, so a request whose answer was
//! lost is sent again. That is harmless with Prometheus: a sample equal to
//! the newest one of its series (same time, same value) is accepted and
//! not stored twice, and a request holding older samples of a series than
//! its newest is refused whole with 400 (out of order) — which happens
//! only when the first send was stored, so it is counted as refused and
//! nothing is lost or doubled. Per series, samples go out oldest first:
//! within a request they are sorted by time, and requests follow the
//! order the samples were collected in.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::encode::Encoder;
use crate::config::remote_write::RemoteWrite;
use crate::config::{Config, Tls};
use crate::report::Batch;
use crate::report::pending::{Chunk, Pending};
use crate::report::spool::{Spool, SpoolError};
use crate::report::unis_ms::backoff;
use crate::sample::{Name, Sample, Timestamp};
use crate::unis::UnisError;

/// Retries back off from this ...
pub const RETRY: Duration = Duration::from_secs(1);
/// ... up to this.
pub const RETRY_MAX: Duration = Duration::from_secs(60);
/// At shutdown, how long to try to deliver before spooling the rest.
pub const FINAL_DELIVERY: Duration = Duration::from_secs(10);

/// Why a destination cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    /// A credentials file could not be read.
    #[error("prometheus.remote_write {url}: {}: {source}", path.display())]
    Credentials {
        /// The destination.
        url: String,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A credential cannot be a header value.
    #[error("prometheus.remote_write {url}: {what} holds bytes an HTTP header cannot carry")]
    Header {
        /// The destination.
        url: String,
        /// Which credential.
        what: &'static str,
    },
    /// The HTTP client (its CA bundle).
    #[error("prometheus.remote_write {url}: {source}")]
    Client {
        /// The destination.
        url: String,
        /// Why.
        #[source]
        source: UnisError,
    },
}

/// What a destination has done, for `blippcmd status` (and tests waiting
/// for it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RemoteWriteReport {
    /// The destination.
    pub url: String,
    /// Samples the receiver accepted.
    pub sent_samples: u64,
    /// Samples in requests the receiver refused for good (4xx but 429).
    pub refused_samples: u64,
    /// Samples not sent because their event type is not exported.
    pub unexported_samples: u64,
    /// Requests answered with 2xx.
    pub requests: u64,
    /// Requests that failed and are retried.
    pub failures: u64,
    /// Compressed request bytes sent.
    pub bytes_sent: u64,
    /// Samples waiting in memory.
    pub pending_samples: u64,
    /// Bytes waiting in the spool.
    pub spooled_bytes: u64,
    /// When a request was last accepted, µs since the epoch.
    pub delivered_at: Option<u64>,
    /// The last failure or refusal.
    pub last_error: Option<String>,
}

/// Every destination's report, in configuration order: written by the
/// sinks after each step, read by the control socket.
static REPORTS: Mutex<Vec<Arc<Mutex<RemoteWriteReport>>>> = Mutex::new(Vec::new());

/// The reports of this process's destinations.
pub fn reports() -> Vec<RemoteWriteReport> {
    REPORTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|r| r.lock().unwrap_or_else(PoisonError::into_inner).clone())
        .collect()
}

/// What a receiver's status means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Stored.
    Accepted,
    /// Refused for good: not sent again.
    Refused,
    /// Try again later.
    Retry,
}

/// The meaning of HTTP status `code`.
pub fn answer(code: u16) -> Answer {
    match code {
        200..=299 => Answer::Accepted,
        429 => Answer::Retry,
        400..=499 => Answer::Refused,
        _ => Answer::Retry,
    }
}

/// Why a request must be retried.
#[derive(Debug)]
struct Retry {
    why: String,
    /// The receiver's `Retry-After`.
    after: Option<Duration>,
}

impl From<SpoolError> for Retry {
    fn from(e: SpoolError) -> Self {
        Retry {
            why: e.to_string(),
            after: None,
        }
    }
}

/// A secret as the scrape endpoint reads its own (the file's text without
/// its final newline; an empty file is an error).
fn read_secret(url: &str, path: &std::path::Path) -> Result<String, RemoteWriteError> {
    crate::report::prometheus::config::read_secret(path).map_err(|source| {
        RemoteWriteError::Credentials {
            url: url.to_owned(),
            path: path.to_owned(),
            source,
        }
    })
}

/// Reads `dest`'s credential files and CA bundle as starting its sink
/// would: `blippd --check` refuses what start-up refuses.
pub fn check(dest: &RemoteWrite) -> Result<(), RemoteWriteError> {
    headers(dest)?;
    client(dest)?;
    Ok(())
}

fn client(dest: &RemoteWrite) -> Result<reqwest::Client, RemoteWriteError> {
    let tls = Tls {
        ssl_cafile: dest.ca_file.clone(),
        ..Tls::default()
    };
    crate::unis::tls::http_client(&tls).map_err(|source| RemoteWriteError::Client {
        url: dest.url.clone(),
        source,
    })
}

/// The headers every request of `dest` carries.
fn headers(dest: &RemoteWrite) -> Result<HeaderMap, RemoteWriteError> {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-protobuf"),
    );
    h.insert(
        "X-Prometheus-Remote-Write-Version",
        HeaderValue::from_static("0.1.0"),
    );
    let bad = |what| RemoteWriteError::Header {
        url: dest.url.clone(),
        what,
    };
    if let Some(file) = &dest.bearer_token_file {
        let token = read_secret(&dest.url, file)?;
        let mut v = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| bad("bearer_token_file"))?;
        v.set_sensitive(true);
        h.insert(header::AUTHORIZATION, v);
    }
    if let Some(auth) = &dest.basic_auth {
        use std::io::Write as _;
        let password = read_secret(&dest.url, &auth.password_file)?;
        let mut v = b"Basic ".to_vec();
        {
            let mut enc = base64_writer(&mut v);
            let _ = write!(enc, "{}:{password}", auth.username);
        }
        let mut v = HeaderValue::from_bytes(&v).map_err(|_| bad("basic_auth"))?;
        v.set_sensitive(true);
        h.insert(header::AUTHORIZATION, v);
    }
    Ok(h)
}

/// A writer that appends the standard base64 of what it is given to
/// `out` when dropped (basic authentication's one use of it).
fn base64_writer(out: &mut Vec<u8>) -> Base64<'_> {
    Base64 {
        out,
        input: Vec::new(),
    }
}

struct Base64<'a> {
    out: &'a mut Vec<u8>,
    input: Vec<u8>,
}

impl std::io::Write for Base64<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.input.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Base64<'_> {
    fn drop(&mut self) {
        const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for chunk in self.input.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    self.out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize]);
                } else {
                    self.out.push(b'=');
                }
            }
        }
    }
}

/// The `Retry-After` of a response, in seconds (the HTTP-date form is
/// not used by the receivers blipp knows).
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let s = h
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(s).min(RETRY_MAX))
}

/// One destination's task.
pub struct RemoteWriteSink {
    dest: RemoteWrite,
    http: reqwest::Client,
    headers: HeaderMap,
    pending: Pending,
    encoder: Encoder,
    report: Arc<Mutex<RemoteWriteReport>>,
    failures: u32,
    /// When the oldest sample waiting in memory arrived.
    oldest: Option<Instant>,
    /// While backing off: when to try again.
    retry_at: Option<Instant>,
}

impl RemoteWriteSink {
    /// A sink for `dest` over `spool`, with `config`'s reporting
    /// tolerances; reads its credentials now.
    pub fn new(
        dest: RemoteWrite,
        spool: Option<Spool>,
        config: &Config,
    ) -> Result<Self, RemoteWriteError> {
        let http = client(&dest)?;
        let headers = headers(&dest)?;
        let mut pending = Pending::new(spool);
        pending.set_tolerances(config);
        let report = Arc::new(Mutex::new(RemoteWriteReport {
            url: dest.url.clone(),
            ..RemoteWriteReport::default()
        }));
        REPORTS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&report));
        Ok(Self {
            encoder: Encoder::new(dest.external_labels.clone()),
            dest,
            http,
            headers,
            pending,
            report,
            failures: 0,
            oldest: None,
            retry_at: None,
        })
    }

    fn with_report(&self, f: impl FnOnce(&mut RemoteWriteReport)) {
        f(&mut self.report.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// When the next delivery is due.
    fn due(&self) -> Option<Instant> {
        if let Some(at) = self.retry_at {
            return Some(at);
        }
        if self.pending.spooled_bytes() > 0
            || self.pending.memory_samples() >= self.dest.batch_max_samples as u64
        {
            return Some(Instant::now());
        }
        self.oldest.map(|t| t + self.dest.batch_max_age)
    }

    /// Runs until every sender of `rx` is gone, then delivers or spools
    /// what is left.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Batch>) {
        loop {
            let due = self.due();
            tokio::select! {
                batch = rx.recv() => match batch {
                    Some(b) => self.push(b),
                    None => break,
                },
                () = async {
                    match due {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => self.deliver().await,
            }
        }
        let end = Instant::now() + FINAL_DELIVERY;
        while !self.pending.is_empty() && Instant::now() < end {
            if let Some(at) = self.retry_at {
                tokio::time::sleep_until(at.min(end)).await;
                if Instant::now() >= end {
                    break;
                }
            }
            self.deliver().await;
        }
        let lost = self.pending.persist();
        if lost > 0 {
            tracing::error!(url = %self.dest.url, samples = lost, "remote write: samples lost at shutdown: the spool cannot take them");
        }
        self.publish();
    }

    fn push(&mut self, batch: Batch) {
        if batch.samples.is_empty() {
            return;
        }
        self.oldest.get_or_insert_with(Instant::now);
        self.pending.push(Name::clone(&batch.probe), batch.samples);
    }

    fn publish(&self) {
        let (memory, spooled) = (self.pending.memory_samples(), self.pending.spooled_bytes());
        self.with_report(|r| {
            r.pending_samples = memory;
            r.spooled_bytes = spooled;
        });
    }

    /// Sends everything waiting: the spool first, then memory.
    async fn deliver(&mut self) {
        self.retry_at = None;
        match self.deliver_all().await {
            Ok(()) => {
                self.failures = 0;
                self.pending.delivered();
                self.oldest = None;
            }
            Err(retry) => {
                self.failures += 1;
                // Everything waits on disk until a delivery succeeds, so
                // that killing blippd meanwhile loses none of it.
                self.pending.hold_on_disk(false);
                let wait =
                    backoff(RETRY, RETRY_MAX, self.failures).max(retry.after.unwrap_or_default());
                tracing::warn!(url = %self.dest.url, error = %retry.why, retry_in_s = wait.as_secs_f64(), "remote write failed; retrying");
                self.with_report(|r| {
                    r.failures += 1;
                    r.last_error = Some(retry.why);
                });
                self.retry_at = Some(Instant::now() + wait);
                self.oldest = (self.pending.memory_samples() > 0).then(Instant::now);
            }
        }
        self.publish();
    }

    async fn deliver_all(&mut self) -> Result<(), Retry> {
        for path in self.pending.segments()? {
            if let Some(chunk) = self.pending.segment(path)? {
                self.send_chunk(chunk).await?;
            }
        }
        while let Some(chunk) = self.pending.take_memory_up_to(self.dest.batch_max_samples) {
            self.send_chunk(chunk).await?;
        }
        Ok(())
    }

    /// Sends a chunk in requests of at most `batch_max_samples`; on a
    /// failure, what was not sent yet waits again in its place.
    async fn send_chunk(&mut self, chunk: Chunk) -> Result<(), Retry> {
        let total = chunk.samples();
        let max = self.dest.batch_max_samples;
        let mut done = 0;
        while done < total {
            let take = (total - done).min(max);
            let part = chunk
                .batches
                .iter()
                .flat_map(|(_, s)| s)
                .skip(done)
                .take(take);
            if let Err(retry) = self.post(part).await {
                if done == 0 {
                    self.pending.give_back(chunk);
                } else {
                    let rest = after(&chunk.batches, done);
                    let back = self.pending.delivered_but(chunk, rest)?;
                    self.pending.put_back(back);
                }
                return Err(retry);
            }
            done += take;
        }
        self.pending.done(chunk)?;
        Ok(())
    }

    /// One request. `Ok` when the receiver stored it or refused it for
    /// good.
    async fn post<'a>(&mut self, samples: impl Iterator<Item = &'a Sample>) -> Result<(), Retry> {
        let (body, counts) = self.encoder.encode(samples);
        // One copy per request: reqwest owns what it sends.
        let body = body.to_vec();
        self.with_report(|r| r.unexported_samples += counts.unexported as u64);
        if counts.sent == 0 {
            return Ok(());
        }
        let bytes = body.len() as u64;
        let response = self
            .http
            .post(&self.dest.url)
            .headers(self.headers.clone())
            .timeout(self.dest.timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| Retry {
                why: error_chain(&e),
                after: None,
            })?;
        let status = response.status();
        match answer(status.as_u16()) {
            Answer::Accepted => {
                self.with_report(|r| {
                    r.sent_samples += counts.sent as u64;
                    r.requests += 1;
                    r.bytes_sent += bytes;
                    r.delivered_at = Some(Timestamp::now().0);
                });
                Ok(())
            }
            Answer::Refused => {
                let reason = reason(response).await;
                tracing::error!(url = %self.dest.url, status = status.as_u16(), samples = counts.sent, reason = %reason, "remote write refused; these samples are not sent again");
                self.with_report(|r| {
                    r.refused_samples += counts.sent as u64;
                    r.last_error = Some(format!("HTTP {status}: {reason}"));
                });
                Ok(())
            }
            Answer::Retry => {
                let after = retry_after(response.headers());
                let reason = reason(response).await;
                Err(Retry {
                    why: format!("HTTP {status}: {reason}"),
                    after,
                })
            }
        }
    }
}

/// The first line of a response body, shortened: what the receiver says.
async fn reason(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(300).collect()
}

/// An error with its causes (reqwest's own message omits them).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The samples of `batches` after the first `n`, by probe.
fn after(batches: &[(Name, Vec<Sample>)], mut n: usize) -> Vec<(Name, Vec<Sample>)> {
    let mut out = Vec::new();
    for (probe, samples) in batches {
        if n >= samples.len() {
            n -= samples.len();
            continue;
        }
        out.push((Name::clone(probe), samples[n..].to_vec()));
        n = 0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Source, Value};

    #[test]
    fn answers() {
        assert_eq!(answer(200), Answer::Accepted);
        assert_eq!(answer(204), Answer::Accepted);
        assert_eq!(answer(400), Answer::Refused);
        assert_eq!(answer(401), Answer::Refused);
        assert_eq!(answer(413), Answer::Refused);
        assert_eq!(answer(429), Answer::Retry);
        assert_eq!(answer(500), Answer::Retry);
        assert_eq!(answer(503), Answer::Retry);
        assert_eq!(answer(302), Answer::Retry);
    }

    #[test]
    fn basic_auth_is_base64() {
        let mut out = Vec::new();
        {
            use std::io::Write as _;
            let mut w = base64_writer(&mut out);
            let _ = write!(w, "Aladdin:open sesame");
        }
        assert_eq!(out, b"QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        for (input, expected) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v")] {
            let mut out = Vec::new();
            {
                use std::io::Write as _;
                let mut w = base64_writer(&mut out);
                let _ = w.write_all(input.as_bytes());
            }
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn what_follows_the_first_n_samples() {
        let s = |t| {
            Sample::new(
                Timestamp(t),
                &Name::from("node"),
                &Name::from("e"),
                Value::Int(t),
                Source::Proc,
            )
        };
        let batches = vec![
            (Name::from("a"), vec![s(1), s(2)]),
            (Name::from("b"), vec![s(3), s(4), s(5)]),
        ];
        let ts = |v: &[(Name, Vec<Sample>)]| -> Vec<(String, Vec<u64>)> {
            v.iter()
                .map(|(p, s)| (p.to_string(), s.iter().map(|x| x.ts.0).collect()))
                .collect()
        };
        assert_eq!(ts(&after(&batches, 0)), ts(&batches));
        assert_eq!(ts(&after(&batches, 3)), [("b".to_owned(), vec![4, 5])]);
        assert_eq!(ts(&after(&batches, 2)), [("b".to_owned(), vec![3, 4, 5])]);
        assert!(after(&batches, 5).is_empty());
    }

    /// A receiver answering requests with `codes` in turn (200 after
    /// them), recording each request's samples (µs → ms, by series name).
    async fn receiver(codes: Vec<u16>) -> (String, Arc<Mutex<Vec<(u16, Vec<(String, i64)>)>>>) {
        use prost::Message as _;
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            let codes = Arc::new(Mutex::new(codes.into_iter()));
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (codes, log) = (Arc::clone(&codes), Arc::clone(&log));
                tokio::spawn(async move {
                    let mut r = BufReader::new(stream);
                    loop {
                        let mut len = 0;
                        let mut headers = Vec::new();
                        loop {
                            let mut line = String::new();
                            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap();
                            }
                            headers.push(lower);
                        }
                        assert!(
                            headers
                                .iter()
                                .any(|h| h.trim() == "content-encoding: snappy")
                        );
                        assert!(
                            headers
                                .iter()
                                .any(|h| h.trim() == "x-prometheus-remote-write-version: 0.1.0")
                        );
                        let mut body = vec![0; len];
                        r.read_exact(&mut body).await.unwrap();
                        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
                        let req =
                            super::super::proto::WriteRequest::decode(raw.as_slice()).unwrap();
                        let samples = req
                            .timeseries
                            .iter()
                            .flat_map(|t| {
                                t.samples
                                    .iter()
                                    .map(|s| (t.labels[0].value.clone(), s.timestamp))
                            })
                            .collect();
                        let code = codes.lock().unwrap().next().unwrap_or(200);
                        log.lock().unwrap().push((code, samples));
                        let answer =
                            format!("HTTP/1.1 {code} X\r\nContent-Length: 7\r\n\r\nbecause");
                        r.get_mut().write_all(answer.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        (url, seen)
    }

    /// 503 is retried, 400 refuses those samples for good, the rest
    /// arrive in order; the report counts each.
    #[tokio::test]
    async fn retries_refusals_and_batches() {
        let (url, seen) = receiver(vec![503, 400]).await;
        let dest = dest(&url);
        let config = crate::config::resolve(serde_json::json!({})).unwrap();
        let sink = RemoteWriteSink::new(dest, None, &config).unwrap();
        let report = Arc::clone(&sink.report);
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(sink.run(rx));
        let load = Name::from("ps:tools:blipp:linux:cpu:load:onemin");
        let node = Name::from("node");
        for i in 0..3u64 {
            let s = |t: u64| {
                Sample::new(
                    Timestamp(t * 1000),
                    &node,
                    &load,
                    Value::Float(t as f64),
                    Source::Proc,
                )
            };
            tx.send(Batch {
                probe: Arc::from("cpu"),
                route: Arc::default(),
                samples: vec![s(10 * i), s(10 * i + 1)],
            })
            .await
            .unwrap();
        }
        drop(tx);
        task.await.unwrap();
        let seen = seen.lock().unwrap().clone();
        let ms = |v: &[(String, i64)]| v.iter().map(|(_, t)| *t).collect::<Vec<_>>();
        let got: Vec<(u16, Vec<i64>)> = seen.iter().map(|(c, s)| (*c, ms(s))).collect();
        assert_eq!(
            got,
            [
                (503, vec![0, 1]),
                (400, vec![0, 1]),
                (200, vec![10, 11]),
                (200, vec![20, 21])
            ]
        );
        let r = report.lock().unwrap().clone();
        assert_eq!(
            (r.sent_samples, r.refused_samples, r.failures, r.requests),
            (4, 2, 1, 2),
            "{r:?}"
        );
        assert_eq!(
            r.last_error.as_deref(),
            Some("HTTP 400 Bad Request: because")
        );
    }

    fn dest(url: &str) -> RemoteWrite {
        RemoteWrite {
            url: url.to_owned(),
            external_labels: Vec::new(),
            batch_max_samples: 2,
            batch_max_age: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
            bearer_token_file: None,
            basic_auth: None,
            ca_file: None,
        }
    }

    #[test]
    fn credentials_from_files_and_the_protocols_headers() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let mut d = dest("http://r/w");
        d.bearer_token_file = Some(token);
        let h = headers(&d).unwrap();
        assert_eq!(h[header::AUTHORIZATION], "Bearer s3cret");
        assert_eq!(h[header::CONTENT_ENCODING], "snappy");
        assert_eq!(h[header::CONTENT_TYPE], "application/x-protobuf");
        assert_eq!(h["X-Prometheus-Remote-Write-Version"], "0.1.0");
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "open sesame\n").unwrap();
        let mut d = dest("http://r/w");
        d.basic_auth = Some(crate::config::remote_write::BasicAuth {
            username: "Aladdin".into(),
            password_file: pw,
        });
        assert_eq!(
            headers(&d).unwrap()[header::AUTHORIZATION],
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        d.basic_auth.as_mut().unwrap().password_file = dir.path().join("missing");
        let e = check(&d).unwrap_err().to_string();
        assert!(
            e.starts_with("prometheus.remote_write http://r/w: ") && e.contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn retry_after_in_seconds_bounded() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("86400"));
        assert_eq!(retry_after(&h), Some(RETRY_MAX));
    }
}
