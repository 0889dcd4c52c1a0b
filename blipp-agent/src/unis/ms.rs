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
    /// Its metadata was created by this blippd: no collection can exist,
    /// so it is created without a lookup.
    pub fresh: bool,
}

/// Collections created at once: enough to hide a server's latency, few
/// enough not to flood it.
const CONCURRENT_CREATES: usize = 8;

/// One MS, and the mids known to have a collection there.
#[derive(Debug)]
pub struct Ms {
    endpoint: Endpoint,
    ready: HashSet<String>,
    /// mids a lookup found without a collection: created without another
    /// lookup.
    absent: HashSet<String>,
}

/// `POST /events` of one collection; 409 (it exists) is success.
async fn create(endpoint: &Endpoint, body: &Value) -> Result<(), UnisError> {
    let url = endpoint.url("/events", &[])?;
    match endpoint
        .send(Method::POST, url, Some((body, "datum")))
        .await
    {
        Ok(_) | Err(UnisError::Status { status: 409, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// mids per `GET /events?mids=`: 25 bytes each, a 5 kB URL.
const MIDS_PER_QUERY: usize = 200;

impl Ms {
    /// The MS at `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            ready: HashSet::new(),
            absent: HashSet::new(),
        }
    }

    /// Whether `mid`'s collection is known to exist.
    pub fn is_ready(&self, mid: &str) -> bool {
        self.ready.contains(mid)
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.endpoint.requests()
    }

    /// Makes sure the collections exist, creating them `CONCURRENT_CREATES`
    /// at a time while `budget` (counted off) and the time until `until`
    /// last; returns the mids still without one, whose data has to wait.
    ///
    /// A collection whose metadata this blippd created is created without
    /// a lookup. The others are looked up in batches; the MS answers `GET
    /// /events?mids=a,b,..` with 404 for the whole list when any one of
    /// them has no collection (the real server does), so a 404 is narrowed
    /// down by halving the list: with k missing among n, about
    /// k·log2(n/k) lookups find exactly those. Each is created with its own
    /// `POST /events` (the real server creates only the first record of a
    /// list); a 409 (created meanwhile) means it exists.
    pub async fn ensure(
        &mut self,
        collections: &[Collection<'_>],
        budget: &mut usize,
        until: std::time::Instant,
    ) -> Result<HashSet<String>, UnisError> {
        let (fresh, found): (Vec<&Collection<'_>>, Vec<&Collection<'_>>) = collections
            .iter()
            .filter(|c| !self.ready.contains(c.mid))
            .partition(|c| c.fresh || self.absent.contains(c.mid));
        let mut to_create: Vec<&Collection<'_>> = fresh;
        let mut waiting: HashSet<String> = HashSet::new();
        let mut parts: Vec<&[&Collection<'_>]> = found.chunks(MIDS_PER_QUERY).collect();
        while let Some(part) = parts.pop() {
            let mids: Vec<&str> = part.iter().map(|c| c.mid).collect();
            if std::time::Instant::now() >= until {
                waiting.extend(mids.iter().map(|m| (*m).to_owned()));
                continue;
            }
            match self
                .endpoint
                .get("/events", &[("mids", &mids.join(","))])
                .await
            {
                Ok(_) => {
                    self.ready.extend(mids.iter().map(|m| (*m).to_owned()));
                }
                Err(UnisError::Status { status: 404, .. }) => match part {
                    [one] => {
                        self.absent.insert(one.mid.to_owned());
                        to_create.push(one);
                    }
                    _ => {
                        let (a, b) = part.split_at(part.len() / 2);
                        parts.push(b);
                        parts.push(a);
                    }
                },
                Err(e) => return Err(e),
            }
        }
        for group in to_create.chunks(CONCURRENT_CREATES) {
            if *budget < group.len() || std::time::Instant::now() >= until {
                waiting.extend(group.iter().map(|c| c.mid.to_owned()));
                continue;
            }
            *budget -= group.len();
            let mut runs = tokio::task::JoinSet::new();
            for c in group {
                let endpoint = self.endpoint.clone();
                let body = json!({
                    "metadata_URL": c.metadata_url,
                    "collection_size": c.size,
                    "ttl": c.ttl,
                });
                let mid = c.mid.to_owned();
                runs.spawn(async move { (mid, create(&endpoint, &body).await) });
            }
            let mut failed = None;
            while let Some(done) = runs.join_next().await {
                match done {
                    Ok((mid, Ok(()))) => {
                        self.absent.remove(&mid);
                        self.ready.insert(mid);
                    }
                    Ok((_, Err(e))) => failed = Some(e),
                    Err(e) => {
                        failed = Some(UnisError::Unexpected {
                            method: "POST",
                            url: "/events".into(),
                            what: format!("the request's task ended: {e}"),
                        })
                    }
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(waiting)
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
