//! A UNIS and MS server for the tests, on loopback, that answers as the
//! real periscope server does on everything blipp uses (see
//! `handler.rs`), validates every body with the real server's schemas, and
//! records every request so that tests can count and inspect them.
//!
//! It runs on its own Tokio runtime, so that synchronous tests can start it,
//! run `blippd` as a child process, and look at what arrived. It can be
//! paused (connections refused) and resumed on the same port, to play a
//! server that is down.

mod handler;
pub mod query;
pub mod schemas;
mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use handler::Fault;
use handler::{Req, Resp, Shared};
pub use schemas::Schemas;
pub use store::{EventCollection, LoggedRequest, now_us};

use crate::tls::TlsMaterial;

/// How to run the server.
#[derive(Clone, Default)]
pub struct Options {
    /// Serve HTTPS with this material, requiring client certificates.
    pub tls: Option<TlsMaterial>,
    /// Validate bodies with these schemas (`None`: no validation, e.g. when
    /// `../shared` is missing; the caller says so).
    pub schemas: Option<Arc<Schemas>>,
    /// How long each `POST /events` takes: the real server inserts a
    /// collection in about a tenth of a second, which is what makes a
    /// burst of new series slow.
    pub events_delay: Option<std::time::Duration>,
}

/// The `User-Agent` of the server's own requests and of
/// [`UnisServer::client`]'s, which the request log tells apart from the
/// agent's.
pub const OWN_AGENT: &str = "blipp-tests unis_server";

/// A running (or paused) test server.
pub struct UnisServer {
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    serving: Mutex<Option<JoinHandle<()>>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// A loopback port nobody listens on right now, for a server that starts
/// later.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl UnisServer {
    /// Starts on a free loopback port.
    pub fn start(options: Options) -> Result<Self> {
        Self::start_on(0, options)
    }

    /// Starts inside the network namespace `ns`: its listener, and every
    /// thread of its runtime (so also its own `GET` of `metadata_URL`),
    /// use that namespace's loopback.
    pub fn start_in(ns: &crate::netns::NetNs, options: Options) -> Result<Self> {
        ns.run(|| Self::start(options))?
    }

    /// Starts on `port` (0: any).
    pub fn start_on(port: u16, options: Options) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let mut fetcher = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .user_agent(OWN_AGENT);
        let tls = match &options.tls {
            Some(m) => {
                fetcher = fetcher
                    .tls_built_in_root_certs(false)
                    .add_root_certificate(reqwest::Certificate::from_pem(m.ca_cert.as_bytes())?)
                    .identity(reqwest::Identity::from_pem(
                        format!("{}{}", m.client.cert, m.client.key).as_bytes(),
                    )?);
                Some(m.server_config()?)
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            store: Mutex::default(),
            schemas: options.schemas,
            fetcher: fetcher.build()?,
            scheme: if tls.is_some() { "https" } else { "http" },
            faults: Mutex::default(),
            events_delay: options.events_delay,
        });
        let listener = runtime.block_on(TcpListener::bind(("127.0.0.1", port)))?;
        let addr = listener.local_addr()?;
        let server = Self {
            runtime,
            shared,
            addr,
            tls,
            serving: Mutex::new(None),
            connections: Arc::default(),
        };
        server.serve(listener);
        Ok(server)
    }

    fn serve(&self, listener: TcpListener) {
        let shared = Arc::clone(&self.shared);
        let tls = self.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let connections = Arc::clone(&self.connections);
        let task = self.runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = Arc::clone(&shared);
                let tls = tls.clone();
                let conn = tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, std::convert::Infallible>(answer(&shared, req).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
                let mut conns = connections
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                conns.retain(|c| !c.is_finished());
                conns.push(conn);
            }
        });
        *self
            .serving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
    }

    /// `http://127.0.0.1:<port>` (or https).
    pub fn url(&self) -> String {
        format!("{}://{}", self.shared.scheme, self.addr)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops accepting and drops open connections: clients see connection
    /// refused until [`UnisServer::resume`]. The stored state stays.
    pub fn pause(&self) {
        if let Some(t) = self
            .serving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            t.abort();
        }
        for c in self
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
        {
            c.abort();
        }
    }

    /// Listens again on the same port.
    pub fn resume(&self) -> Result<()> {
        let listener = self
            .runtime
            .block_on(TcpListener::bind(self.addr))
            .with_context(|| format!("binding {} again", self.addr))?;
        self.serve(listener);
        Ok(())
    }

    /// Answer `status` to every request matching `fault` from now on.
    pub fn inject(&self, fault: Fault) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(fault);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    fn with_store<T>(&self, f: impl FnOnce(&store::Store) -> T) -> T {
        f(&self
            .shared
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The newest version of every record of `collection`.
    pub fn records(&self, collection: &str) -> Vec<Value> {
        self.with_store(|s| s.newest(collection))
    }

    /// Every version of every record of `collection`, oldest first.
    pub fn versions(&self, collection: &str) -> Vec<Value> {
        self.with_store(|s| s.all_versions(collection))
    }

    /// The newest version of one record.
    pub fn record(&self, collection: &str, id: &str) -> Option<Value> {
        self.with_store(|s| s.latest(collection, id))
    }

    /// MS registrations by mid.
    pub fn events(&self) -> std::collections::BTreeMap<String, EventCollection> {
        self.with_store(|s| s.events.clone())
    }

    /// MS data by mid.
    pub fn data(&self) -> std::collections::BTreeMap<String, Vec<Value>> {
        self.with_store(|s| s.data.clone())
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.with_store(|s| s.log.clone())
    }

    /// The agent's requests (not the server's own, not the test's through
    /// [`UnisServer::client`]) that the server answered from `from` to
    /// `to` (µs since the epoch, both included), in order.
    pub fn agent_requests(&self, from: u64, to: u64) -> Vec<LoggedRequest> {
        self.with_store(|s| {
            s.log
                .iter()
                .filter(|r| !r.own && (from..=to).contains(&r.at))
                .cloned()
                .collect()
        })
    }

    /// How many `POST /data` the server answered with `status`.
    pub fn data_posts(&self, status: u16) -> usize {
        self.with_store(|s| {
            s.log
                .iter()
                .filter(|r| r.method == "POST" && r.target == "/data" && r.status == status)
                .count()
        })
    }

    /// When (µs since the epoch) each accepted `POST /data` carrying data
    /// of any of `mids` arrived, in order.
    pub fn data_arrivals(&self, mids: &std::collections::BTreeSet<String>) -> Vec<u64> {
        self.with_store(|s| {
            s.log
                .iter()
                .filter(|r| r.method == "POST" && r.target == "/data" && r.status == 201)
                .filter(|r| {
                    r.body
                        .as_ref()
                        .and_then(Value::as_array)
                        .is_some_and(|items| {
                            items
                                .iter()
                                .any(|i| i["mid"].as_str().is_some_and(|m| mids.contains(m)))
                        })
                })
                .map(|r| r.at)
                .collect()
        })
    }

    /// `POST /<collection>` of `body` as another client of UNIS would
    /// (an operator's tool, another agent); the status answered.
    pub fn post(&self, collection: &str, body: &Value) -> Result<u16> {
        let client = self.client()?;
        let url = format!("{}/{collection}", self.url());
        let status = self.runtime.block_on(async {
            client
                .post(url)
                .header("Content-Type", "application/perfsonar+json")
                .body(body.to_string())
                .send()
                .await
                .map(|r| r.status().as_u16())
        })?;
        Ok(status)
    }

    /// Changes a stored record as an operator would (a PUT through the
    /// server's own logic is what the agent must notice; this is the
    /// shortcut a test uses to play that operator).
    pub fn put(&self, collection: &str, id: &str, body: &Value) -> Result<u16> {
        let client = self.client()?;
        let url = format!("{}/{collection}/{id}", self.url());
        let status = self.runtime.block_on(async {
            client
                .put(url)
                .header("Content-Type", "application/perfsonar+json")
                .header("Accept", "application/perfsonar+json")
                .body(body.to_string())
                .send()
                .await
                .map(|r| r.status().as_u16())
        })?;
        Ok(status)
    }

    /// Changes the (first) service's `properties` as an operator would: a
    /// `PUT` of them (the server keeps the other top-level keys); panics
    /// unless the server takes it.
    #[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
    pub fn edit_service(&self, edit: impl FnOnce(&mut Value)) {
        let service = self.records("services").remove(0);
        let mut props = service["properties"].clone();
        edit(&mut props);
        let id = service["id"].as_str().unwrap();
        let body = serde_json::json!({ "properties": props });
        assert_eq!(self.put("services", id, &body).unwrap(), 204);
    }

    /// A client that can talk to this server (with the client certificate
    /// when it serves TLS).
    pub fn client(&self) -> Result<reqwest::Client> {
        Ok(self.shared.fetcher.clone())
    }

    /// Runs `f` on the server's runtime (for tests that send requests of
    /// their own).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

impl Drop for UnisServer {
    fn drop(&mut self) {
        self.pause();
    }
}

async fn answer(shared: &Shared, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let header = |name: hyper::header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let req = Req {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        content_type: header(hyper::header::CONTENT_TYPE),
        accept: header(hyper::header::ACCEPT),
        user_agent: header(hyper::header::USER_AGENT),
        host: header(hyper::header::HOST).unwrap_or_default(),
        body,
    };
    let Resp {
        status,
        headers,
        body,
    } = shared.handle(req).await;
    let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}
