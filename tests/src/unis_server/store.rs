//! What the test server holds: versioned UNIS records per collection, MS
//! event collections and their data, and a log of every request.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::query::Query;

/// One stored version of a record.
#[derive(Clone, Debug)]
struct Version {
    record: Value,
    deleted: bool,
    seq: u64,
}

/// An MS collection registered by `POST /events`.
#[derive(Clone, Debug, PartialEq)]
pub struct EventCollection {
    /// The stored event record (`metadata_URL`, `collection_size`, `ttl`,
    /// `id` = the mid, `ts`, `selfRef`, `$schema`).
    pub record: Value,
}

/// One request as the server received it, and its answer.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `Accept` header, if any.
    pub accept: Option<String>,
    /// Sent by the server itself (its `GET` of `metadata_URL`) or by the
    /// test through [`UnisServer::client`](super::UnisServer::client), not
    /// by the agent.
    pub own: bool,
    /// The body, when it was JSON.
    pub body: Option<Value>,
    /// The status code answered.
    pub status: u16,
    /// When it arrived, µs since the epoch.
    pub at: u64,
}

/// Everything the server stores.
#[derive(Default)]
pub struct Store {
    collections: HashMap<String, Vec<Version>>,
    /// mid -> registration (`POST /events`).
    pub events: BTreeMap<String, EventCollection>,
    /// mid -> data points, in arrival order. A mid can have data without a
    /// registration: the real server then creates an uncapped collection.
    pub data: BTreeMap<String, Vec<Value>>,
    /// Every request, in arrival order.
    pub log: Vec<LoggedRequest>,
    seq: u64,
    ids: u64,
}

/// Microseconds since the epoch.
pub fn now_us() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn ts_of(v: &Value) -> i64 {
    v.get("ts").and_then(Value::as_i64).unwrap_or(0)
}

impl Store {
    /// A fresh id shaped like the real server's (24 hex digits).
    pub fn new_id(&mut self) -> String {
        self.ids += 1;
        format!("{:08x}{:016x}", now_us() / 1_000_000, self.ids)
    }

    /// Whether this exact (id, ts) version exists (the real store's unique
    /// key).
    pub fn has_version(&self, collection: &str, id: &str, ts: i64) -> bool {
        self.collections.get(collection).is_some_and(|vs| {
            vs.iter().any(|v| {
                v.record.get("id").and_then(Value::as_str) == Some(id) && ts_of(&v.record) == ts
            })
        })
    }

    /// Adds a version.
    pub fn insert(&mut self, collection: &str, record: Value) {
        self.seq += 1;
        let seq = self.seq;
        self.collections
            .entry(collection.to_owned())
            .or_default()
            .push(Version {
                record,
                deleted: false,
                seq,
            });
    }

    /// Live versions, newest first (the server sorts by `ts` descending).
    fn live(&self, collection: &str) -> Vec<&Version> {
        let mut vs: Vec<&Version> = self
            .collections
            .get(collection)
            .map(|vs| vs.iter().filter(|v| !v.deleted).collect())
            .unwrap_or_default();
        vs.sort_by(|a, b| {
            ts_of(&b.record)
                .cmp(&ts_of(&a.record))
                .then(b.seq.cmp(&a.seq))
        });
        vs
    }

    /// The newest live version of `id`.
    pub fn latest(&self, collection: &str, id: &str) -> Option<Value> {
        self.live(collection)
            .into_iter()
            .find(|v| v.record.get("id").and_then(Value::as_str) == Some(id))
            .map(|v| v.record.clone())
    }

    /// Every live version matching `q`, newest first; `unique` keeps the
    /// newest of each id. Returns the records and the count before
    /// `unique` (the server's `X-Count`).
    pub fn query(&self, collection: &str, q: &Query) -> (Vec<Value>, usize) {
        let matching: Vec<&Version> = self
            .live(collection)
            .into_iter()
            .filter(|v| q.matches(&v.record))
            .skip(q.skip)
            .collect();
        let limited: Vec<&Version> = match q.limit {
            Some(n) => matching.into_iter().take(n).collect(),
            None => matching,
        };
        let count = limited.len();
        let mut seen = std::collections::HashSet::new();
        let records = limited
            .into_iter()
            .filter(|v| {
                !q.unique
                    || seen.insert(
                        v.record
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    )
            })
            .map(|v| v.record.clone())
            .collect();
        (records, count)
    }

    /// Replaces the newest version of `id` (a PUT updates in place).
    /// Returns false when there is none.
    pub fn replace_latest(&mut self, collection: &str, id: &str, record: Value) -> bool {
        let Some(seq) = self
            .live(collection)
            .into_iter()
            .find(|v| v.record.get("id").and_then(Value::as_str) == Some(id))
            .map(|v| v.seq)
        else {
            return false;
        };
        if let Some(v) = self
            .collections
            .get_mut(collection)
            .and_then(|vs| vs.iter_mut().find(|v| v.seq == seq))
        {
            v.record = record;
        }
        true
    }

    /// Marks every version of `id` deleted.
    pub fn delete(&mut self, collection: &str, id: &str) {
        if let Some(vs) = self.collections.get_mut(collection) {
            for v in vs {
                if v.record.get("id").and_then(Value::as_str) == Some(id) {
                    v.deleted = true;
                }
            }
        }
    }

    /// Every live version of every record, oldest first.
    pub fn all_versions(&self, collection: &str) -> Vec<Value> {
        let mut vs = self.live(collection);
        vs.reverse();
        vs.into_iter().map(|v| v.record.clone()).collect()
    }

    /// The newest live version of each record.
    pub fn newest(&self, collection: &str) -> Vec<Value> {
        let q = Query {
            unique: true,
            ..Query::default()
        };
        self.query(collection, &q).0
    }

    /// Whether the MS has a collection for `mid` (registered or created by
    /// data).
    pub fn has_collection(&self, mid: &str) -> bool {
        self.events.contains_key(mid) || self.data.contains_key(mid)
    }
}
