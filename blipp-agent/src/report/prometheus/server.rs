//! The scrape endpoint: `GET /metrics` over HTTP/1.1 (TLS when configured),
//! answered from the [`Store`] in the format the `Accept` header prefers,
//! gzip-compressed when `Accept-Encoding` allows it. A scrape serialises
//! what the probes last collected; it never makes one collect.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::config::{PATH, POINTER, Scrape, read_secret};
use super::exposition::{self, Format};
use super::store::Store;
use crate::config::ConfigError;

/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 16;

/// How long a client may take to send its request head, or a TLS
/// handshake: a stalled client holds a connection no longer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The endpoint's settings with its files read: what `--check` and start-up
/// both load, so that they refuse the same files.
pub struct Prepared {
    address: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The whole `Authorization` value a request must carry.
    authorization: Option<String>,
}

fn invalid(origin: &str, pointer: &str, path: &std::path::Path, expected: String) -> ConfigError {
    ConfigError::invalid(
        origin,
        &format!("{POINTER}/scrape/{pointer}"),
        &serde_json::Value::String(path.display().to_string()),
        expected,
    )
}

impl Prepared {
    /// Reads the files `scrape` names; errors name `origin` (the file).
    pub fn load(scrape: &Scrape, origin: &str) -> Result<Self, ConfigError> {
        let tls = match &scrape.tls {
            None => None,
            Some(files) => {
                let certs: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_file_iter(&files.cert)
                        .and_then(Iterator::collect)
                        .map_err(|e| {
                            invalid(
                                origin,
                                "tls/cert",
                                &files.cert,
                                format!("a readable PEM certificate file ({e})"),
                            )
                        })?;
                if certs.is_empty() {
                    return Err(invalid(
                        origin,
                        "tls/cert",
                        &files.cert,
                        "a PEM certificate file (none found in it)".to_owned(),
                    ));
                }
                let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
                    invalid(
                        origin,
                        "tls/key",
                        &files.key,
                        format!("a readable PEM private key file ({e})"),
                    )
                })?;
                let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
                .map_err(|e| {
                    invalid(
                        origin,
                        "tls/key",
                        &files.key,
                        format!("a key that matches the certificate ({e})"),
                    )
                })?;
                Some(Arc::new(config))
            }
        };
        let authorization = match (&scrape.basic_auth, &scrape.bearer_token_file) {
            (Some(basic), _) => {
                let password = read_secret(&basic.password_file).map_err(|e| {
                    invalid(
                        origin,
                        "basic_auth/password_file",
                        &basic.password_file,
                        format!("a readable file holding the password ({e})"),
                    )
                })?;
                use base64::Engine as _;
                let pair = format!("{}:{password}", basic.username);
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            (None, Some(file)) => {
                let token = read_secret(file).map_err(|e| {
                    invalid(
                        origin,
                        "bearer_token_file",
                        file,
                        format!("a readable file holding the token ({e})"),
                    )
                })?;
                Some(format!("Bearer {token}"))
            }
            (None, None) => None,
        };
        Ok(Self {
            address: scrape.address(),
            tls,
            authorization,
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

/// Compares without stopping at the first difference, so that the time an
/// answer takes does not tell how much of a guessed secret was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn accepts_gzip(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"))
                && parts.all(|p| p.replace(' ', "") != "q=0")
        })
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r
}

/// Answers one request.
fn answer(
    store: &Store,
    authorization: Option<&str>,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    if let Some(expected) = authorization {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .map_or(&b""[..], HeaderValue::as_bytes);
        if !same(given, expected.as_bytes()) {
            let mut r = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
            let challenge = if expected.starts_with("Basic ") {
                "Basic realm=\"blippd\""
            } else {
                "Bearer"
            };
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
            return r;
        }
    }
    if req.uri().path() != PATH {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    let format = Format::negotiate(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let mut body = Vec::with_capacity(store.size_hint());
    store.read(|view| exposition::encode(&view, format, &mut body));
    store.set_size_hint(body.len());
    let gzip = accepts_gzip(req);
    if gzip {
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::fast(),
        );
        if encoder.write_all(&body).is_ok()
            && let Ok(compressed) = encoder.finish()
        {
            body = compressed;
        } else {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "compression failed\n");
        }
    }
    let mut r = Response::new(Full::new(Bytes::from(body)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    r
}

/// Binds the endpoint's address.
pub async fn bind(prepared: &Prepared) -> std::io::Result<TcpListener> {
    TcpListener::bind(prepared.address).await
}

/// Serves scrapes until the task is dropped.
pub async fn serve(listener: TcpListener, prepared: Prepared, store: &'static Store) {
    let tls = prepared.tls.map(tokio_rustls::TlsAcceptor::from);
    let authorization: Option<Arc<str>> = prepared.authorization.map(Arc::from);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "accepting a scrape connection");
                continue;
            }
        };
        let tls = tls.clone();
        let authorization = authorization.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let r = answer(store, authorization.as_deref(), &req);
                async move { Ok::<_, std::convert::Infallible>(r) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(CLIENT_TIMEOUT);
            let served = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            http.serve_connection(TokioIo::new(stream), service).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake of a scrape failed");
                            return;
                        }
                        Err(_) => return,
                    }
                }
                None => http.serve_connection(TokioIo::new(stream), service).await,
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "scrape connection");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same(b"Bearer abc", b"Bearer abc"));
        assert!(!same(b"Bearer abd", b"Bearer abc"));
        assert!(!same(b"Bearer ab", b"Bearer abc"));
    }
}
