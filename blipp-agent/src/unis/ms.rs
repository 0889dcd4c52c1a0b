//! The measurement store: a collection per mid, created before its first
//! data (`POST /events` with `metadata_URL`, `collection_size`, `ttl`; the
//! MS reads the metadata from UNIS itself), and data points posted in
//! batches that carry many mids each (`POST /data`).

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use super::UnisError;
use super::client::Endpoint;

/// What the MS needs to create a mid's collection.
#[derive(Clone, Debug)]
pub struct Collection<'a> {
    /// The mid.
    pub mid: &'a str,
    /// The metadata's URL in UNIS.
    pub metadata_url: &'a str,
    /// `collection_size`, bytes.
    pub size: u64,
    /// `collection_ttl`, seconds.
    pub ttl: u64,
}

/// One MS, and the mids known to have a collection there.
#[derive(Debug)]
pub struct Ms {
    endpoint: Endpoint,
    ready: HashSet<String>,
}

/// mids per `GET /events?mids=`: 25 bytes each, a 5 kB URL.
const MIDS_PER_QUERY: usize = 200;

impl Ms {
    /// The MS at `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            ready: HashSet::new(),
        }
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.endpoint.requests()
    }

    /// Makes sure every collection exists. The MS answers `GET
    /// /events?mids=a,b,..` with 404 for the whole list when any one of
    /// them has no collection (the real server does), so a 404 is
    /// narrowed down by halving the list: with k new mids among n, about
    /// k·log2(n/k) lookups find exactly the new ones, and one `POST
    /// /events` each creates them (one record per request: the real server
    /// creates only the first of a list). A 409 (created meanwhile by
    /// someone else) means it exists.
    pub async fn ensure(&mut self, collections: &[Collection<'_>]) -> Result<(), UnisError> {
        let missing: Vec<&Collection<'_>> = collections
            .iter()
            .filter(|c| !self.ready.contains(c.mid))
            .collect();
        let mut parts: Vec<&[&Collection<'_>]> = missing.chunks(MIDS_PER_QUERY).collect();
        while let Some(part) = parts.pop() {
            let mids: Vec<&str> = part.iter().map(|c| c.mid).collect();
            match self
                .endpoint
                .get("/events", &[("mids", &mids.join(","))])
                .await
            {
                Ok(_) => {
                    self.ready.extend(mids.iter().map(|m| (*m).to_owned()));
                }
                Err(UnisError::Status { status: 404, .. }) => match part {
                    [one] => self.create(one).await?,
                    _ => {
                        let (a, b) = part.split_at(part.len() / 2);
                        parts.push(b);
                        parts.push(a);
                    }
                },
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `POST /events` of one collection.
    async fn create(&mut self, c: &Collection<'_>) -> Result<(), UnisError> {
        let body = json!({
            "metadata_URL": c.metadata_url,
            "collection_size": c.size,
            "ttl": c.ttl,
        });
        let url = self.endpoint.url("/events", &[])?;
        match self
            .endpoint
            .send(Method::POST, url, Some((&body, "datum")))
            .await
        {
            Ok(_) | Err(UnisError::Status { status: 409, .. }) => {
                self.ready.insert(c.mid.to_owned());
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The timestamps of `mid`'s data points between `first` and `last`
    /// (µs, inclusive) that the MS holds: which of a batch sent before
    /// (perhaps received) it has already.
    pub async fn held(
        &self,
        mid: &str,
        first: u64,
        last: u64,
        at_most: usize,
    ) -> Result<HashSet<u64>, UnisError> {
        let (gte, lte, limit) = (
            format!("gte={first}"),
            format!("lte={last}"),
            at_most.to_string(),
        );
        let got = self
            .endpoint
            .get(
                &format!("/data/{mid}"),
                &[("ts", &gte), ("ts", &lte), ("limit", &limit)],
            )
            .await?;
        Ok(super::client::into_list(got)
            .iter()
            .filter_map(|d| d.get("ts").and_then(Value::as_u64))
            .collect())
    }

    /// `POST /data` of `[{"mid": .., "data": [{"ts": .., "value": ..}]}]`.
    pub async fn post_data(&self, body: &Value) -> Result<(), UnisError> {
        let url = self.endpoint.url("/data", &[])?;
        self.endpoint
            .send(Method::POST, url, Some((body, "data")))
            .await?;
        Ok(())
    }
}
