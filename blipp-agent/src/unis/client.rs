//! HTTP to one UNIS or MS server, as the periscope server expects it:
//! bodies are `application/perfsonar+json` with the schema as `profile`
//! (plain `application/json` is answered with 500), answers are asked for
//! as perfsonar+json. Every request is counted, so that blippd can say
//! what its start-up cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::UnisError;

/// The media type of every body.
pub const PSJSON: &str = "application/perfsonar+json";

/// The schema set of the periscope server (`$schema` and `profile`).
pub const SCHEMA_BASE: &str = "http://unis.crest.iu.edu/schema/20151104/";

/// The URI of schema `name` (`node`, `port`, `service`, `measurement`,
/// `metadata`, `datum`, `data`).
pub fn schema_uri(name: &str) -> String {
    format!("{SCHEMA_BASE}{name}#")
}

/// An answer: its status and its JSON body (`None` when empty).
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The body, parsed.
    pub body: Option<Value>,
}

/// One server (UNIS or MS) at a base URL.
#[derive(Clone, Debug)]
pub struct Endpoint {
    base: String,
    http: reqwest::Client,
    requests: Arc<AtomicU64>,
}

/// How much of an error body goes into an error message.
const ERROR_BODY_CHARS: usize = 300;

impl Endpoint {
    /// `base` is the configured URL (`http://unis:8888`, a trailing slash
    /// is ignored); `http` carries the TLS settings.
    pub fn new(base: &str, http: reqwest::Client) -> Result<Self, UnisError> {
        let base = base.trim_end_matches('/');
        let url = Url::parse(base).map_err(|e| UnisError::Url {
            url: base.to_owned(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(UnisError::Url {
                url: base.to_owned(),
                reason: "expected http://host[:port] or https://host[:port]".into(),
            });
        }
        Ok(Self {
            base: base.to_owned(),
            http,
            requests: Arc::default(),
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Requests sent so far (answered or not).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `base` + `path` with `query` form-encoded (so that hrefs, URNs and
    /// the commas of a value list reach the server intact).
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, UnisError> {
        let text = format!("{}{path}", self.base);
        let mut url = Url::parse(&text).map_err(|e| UnisError::Url {
            url: text.clone(),
            reason: e.to_string(),
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Sends one request; only a failure to get an answer is an error.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<(&Value, &str)>,
    ) -> Result<Answer, UnisError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let name = method_name(&method);
        let mut req = self
            .http
            .request(method, url.clone())
            .header(reqwest::header::ACCEPT, PSJSON);
        if let Some((value, schema)) = body {
            req = req
                .header(
                    reqwest::header::CONTENT_TYPE,
                    format!("{PSJSON}; profile={}", schema_uri(schema)),
                )
                .body(value.to_string());
        }
        let unreachable = |source| UnisError::Unreachable {
            method: name,
            url: url.to_string(),
            source,
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(unreachable)?;
        tracing::debug!(method = name, %url, status = status.as_u16(), bytes = bytes.len(), "UNIS/MS request");
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Err(UnisError::Status {
                method: name,
                url: url.to_string(),
                status: status.as_u16(),
                body: text.chars().take(ERROR_BODY_CHARS).collect(),
            });
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(
                serde_json::from_slice(&bytes).map_err(|e| UnisError::Unexpected {
                    method: name,
                    url: url.to_string(),
                    what: format!("not JSON: {e}"),
                })?,
            )
        };
        Ok(Answer { status, body })
    }

    /// `GET path?query`: the JSON answer.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, UnisError> {
        let url = self.url(path, query)?;
        let answer = self.send(Method::GET, url.clone(), None).await?;
        answer.body.ok_or_else(|| UnisError::Unexpected {
            method: "GET",
            url: url.to_string(),
            what: "an empty body".into(),
        })
    }

    /// `GET path?query` of a collection: the records, newest first. The
    /// server answers a query with a list (also of one), `GET /col/id`
    /// with the bare record or `[]`; both come back as a list here.
    pub async fn get_list(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Value>, UnisError> {
        Ok(into_list(self.get(path, query).await?))
    }

    /// `POST path` of one record or a list: the stored records (the server
    /// answers a single one unwrapped; this always returns a list).
    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        schema: &str,
    ) -> Result<Vec<Value>, UnisError> {
        let url = self.url(path, &[])?;
        let answer = self
            .send(Method::POST, url.clone(), Some((body, schema)))
            .await?;
        match answer.body {
            Some(v) => Ok(into_list(v)),
            None => Err(UnisError::Unexpected {
                method: "POST",
                url: url.to_string(),
                what: "no stored record in the answer".into(),
            }),
        }
    }

    /// `PUT path`: the server sets the body's top-level keys on the newest
    /// version and renews its `ts`.
    pub async fn put(&self, path: &str, body: &Value, schema: &str) -> Result<(), UnisError> {
        let url = self.url(path, &[])?;
        self.send(Method::PUT, url, Some((body, schema))).await?;
        Ok(())
    }
}

pub(crate) fn into_list(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        other => vec![other],
    }
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "HTTP",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_hrefs_and_lists_intact() {
        let e = Endpoint::new("http://unis.example:8888/", reqwest::Client::new()).unwrap();
        assert_eq!(e.base(), "http://unis.example:8888");
        let url = e
            .url(
                "/metadata",
                &[
                    (
                        "parameters.measurement.href",
                        "http://u/measurements/a,http://u/measurements/b",
                    ),
                    ("unique", "true"),
                ],
            )
            .unwrap();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        assert_eq!(
            pairs,
            [
                (
                    "parameters.measurement.href".to_owned(),
                    "http://u/measurements/a,http://u/measurements/b".to_owned()
                ),
                ("unique".to_owned(), "true".to_owned())
            ]
        );
        assert_eq!(url.path(), "/metadata");
        assert!(Endpoint::new("unis:8888", reqwest::Client::new()).is_err());
        assert!(Endpoint::new("ftp://unis", reqwest::Client::new()).is_err());
    }
}
