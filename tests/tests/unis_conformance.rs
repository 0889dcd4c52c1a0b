//! The UNIS/MS test server answers as the real periscope server did:
//! `../shared/unis/transcript-real-server.json` (26 requests to the real
//! server and its answers, error cases included) is replayed against it
//! exchange by exchange, comparing status codes, the headers a client reads
//! and the shape of every body.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use blipp_tests::unis_server::{Options, UnisServer};
use blipp_tests::{real_schemas, shared};
use serde_json::Value;

/// The address the transcript was recorded against.
const RECORDED: &str = "http://127.0.0.1:18892";

/// Keys of MongoDB's `collStats` that only a MongoDB-wire store has; the
/// agent never reads `generic`.
const STORE_INTERNALS: [&str; 2] = ["$clusterTime", "operationTime"];

/// Values that differ between two servers by nature (generated ids and
/// times), tracked so that the rest can be compared exactly.
#[derive(Default)]
struct Replay {
    /// Recorded id -> the id this server generated in its place.
    ids: HashMap<String, String>,
    /// Every integer the client sent: a `ts` among them is the client's and
    /// must come back unchanged.
    sent_numbers: BTreeSet<i64>,
    base: String,
}

impl Replay {
    /// The recorded text with the recorded address and ids replaced by ours.
    fn localize(&self, text: &str) -> String {
        let mut out = text.replace(RECORDED, &self.base);
        for (recorded, ours) in &self.ids {
            out = out.replace(recorded, ours);
        }
        out
    }

    fn localize_value(&self, v: &Value) -> Value {
        serde_json::from_str(&self.localize(&v.to_string())).unwrap()
    }

    fn remember_numbers(&mut self, v: &Value) {
        match v {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    self.sent_numbers.insert(i);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| self.remember_numbers(x)),
            Value::Object(o) => o.values().for_each(|x| self.remember_numbers(x)),
            _ => {}
        }
    }

    /// Learns the ids this server generated where the real one generated
    /// others: a record's `id` and the last segment of its `selfRef`.
    fn learn_ids(&mut self, expected: &Value, actual: &Value) {
        match (expected, actual) {
            (Value::Object(e), Value::Object(a)) => {
                for key in ["id", "selfRef"] {
                    if let (Some(Value::String(x)), Some(Value::String(y))) =
                        (e.get(key), a.get(key))
                    {
                        let last = |s: &str| s.rsplit('/').next().unwrap_or(s).to_owned();
                        let (x, y) = (last(x), last(y));
                        if x != y && !self.ids.contains_key(&x) {
                            self.ids.insert(x, y);
                        }
                    }
                }
            }
            (Value::Array(e), Value::Array(a)) => {
                for (x, y) in e.iter().zip(a) {
                    self.learn_ids(x, y);
                }
            }
            _ => {}
        }
    }

    /// Compares a recorded body (already localized) with ours.
    fn compare(&self, expected: &Value, actual: &Value, at: &str, problems: &mut Vec<String>) {
        match (expected, actual) {
            (Value::Object(e), Value::Object(a)) => {
                let keys = |m: &serde_json::Map<String, Value>| -> BTreeSet<String> {
                    m.keys()
                        .filter(|k| !STORE_INTERNALS.contains(&k.as_str()))
                        .cloned()
                        .collect()
                };
                if keys(e) != keys(a) {
                    problems.push(format!(
                        "{at}: keys {:?} != recorded {:?}",
                        keys(a),
                        keys(e)
                    ));
                    return;
                }
                for (k, ev) in e {
                    if STORE_INTERNALS.contains(&k.as_str()) {
                        continue;
                    }
                    let here = format!("{at}/{k}");
                    let av = &a[k];
                    if k == "ts" && !ev.as_i64().is_some_and(|t| self.sent_numbers.contains(&t)) {
                        // Server-made: an integer number of µs near now.
                        let now = blipp_tests::unis_server::now_us();
                        if !av
                            .as_u64()
                            .is_some_and(|t| t + 3_600_000_000 > now && t <= now + 60_000_000)
                        {
                            problems.push(format!("{here}: {av} is not a server timestamp in µs"));
                        }
                    } else if k == "message" || k == "exc_info" {
                        compare_message(ev, av, &here, problems);
                    } else if at.ends_with("/generic")
                        && !["count", "capped", "scaleFactor"].contains(&k.as_str())
                    {
                        // Storage statistics: the encoding decides the bytes.
                        if ev.is_number() != av.is_number() {
                            problems.push(format!("{here}: {av} is not a number like {ev}"));
                        }
                    } else {
                        self.compare(ev, av, &here, problems);
                    }
                }
            }
            (Value::Array(e), Value::Array(a)) => {
                if e.len() != a.len() {
                    problems.push(format!("{at}: {} items, recorded {}", a.len(), e.len()));
                    return;
                }
                for (i, (x, y)) in e.iter().zip(a).enumerate() {
                    self.compare(x, y, &format!("{at}/{i}"), problems);
                }
            }
            (Value::Number(x), Value::Number(y)) => {
                if x.is_f64() != y.is_f64() || x.as_f64() != y.as_f64() {
                    problems.push(format!("{at}: {y} != recorded {x}"));
                }
            }
            (e, a) => {
                if e != a {
                    problems.push(format!("{at}: {a} != recorded {e}"));
                }
            }
        }
    }
}

/// Error texts come from different validators: the quoted names in the
/// real message (the property, the content type) must appear in ours;
/// a message without quotes must be the same.
fn compare_message(expected: &Value, actual: &Value, at: &str, problems: &mut Vec<String>) {
    let (Some(e), Some(a)) = (expected.as_str(), actual.as_str()) else {
        problems.push(format!("{at}: {actual} is not a message like {expected}"));
        return;
    };
    let quoted: Vec<&str> = e.split('\'').skip(1).step_by(2).collect();
    if quoted.is_empty() {
        if e != a {
            problems.push(format!("{at}: {a:?} != recorded {e:?}"));
        }
    } else {
        for q in quoted {
            if !a.contains(q) {
                problems.push(format!("{at}: {a:?} does not name {q:?} as {e:?} does"));
            }
        }
    }
}

/// Replays the transcript at `path` (`count` exchanges) against a fresh
/// test server and fails naming every exchange whose answer differs.
fn replay(path: &Path, count: usize) -> (UnisServer, Replay) {
    let schemas = real_schemas("the conformance test of the UNIS/MS test server")
        .expect("../shared was found, so its schemas are there");
    let transcript: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        transcript.len(),
        count,
        "{} holds {count} exchanges",
        path.display()
    );
    let server = UnisServer::start(Options {
        schemas: Some(schemas),
        ..Options::default()
    })
    .unwrap();
    let mut replay = Replay {
        base: server.url(),
        ..Replay::default()
    };
    let client = server.client().unwrap();
    let mut failures = Vec::new();
    for (i, exchange) in transcript.iter().enumerate() {
        let req = &exchange["request"];
        let expected = &exchange["response"];
        let method = req["method"].as_str().unwrap();
        let url = format!(
            "{}{}",
            server.url(),
            replay.localize(req["path"].as_str().unwrap())
        );
        let mut builder = client.request(method.parse().unwrap(), &url);
        for (name, value) in req["headers"].as_object().unwrap() {
            builder = builder.header(name.as_str(), replay.localize(value.as_str().unwrap()));
        }
        if !req["body"].is_null() {
            let body = replay.localize_value(&req["body"]);
            replay.remember_numbers(&body);
            builder = builder.body(body.to_string());
        }
        let (status, headers, text) = server.block_on(async {
            let r = builder.send().await.unwrap();
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            (status, headers, r.text().await.unwrap())
        });
        let mut problems = Vec::new();
        let want_status = expected["status"].as_u64().unwrap();
        if u64::from(status) != want_status {
            problems.push(format!("status {status}, recorded {want_status}: {text}"));
        }
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text.clone()))
        };
        if method == "GET" && req["path"] == "/" {
            // GET /: the test server lists only the collections blipp uses,
            // each exactly as the real server lists it.
            let recorded = replay.localize_value(&expected["body"]);
            let listed = body.as_array().cloned().unwrap_or_default();
            if listed.is_empty() {
                problems.push("GET / lists nothing".into());
            }
            for link in &listed {
                if !recorded.as_array().unwrap().contains(link) {
                    problems.push(format!(
                        "GET / lists {link}, which the real server does not"
                    ));
                }
            }
        } else {
            replay.learn_ids(&expected["body"], &body);
            let recorded = replay.localize_value(&expected["body"]);
            replay.compare(&recorded, &body, "", &mut problems);
        }
        for (name, value) in expected["headers"].as_object().unwrap() {
            let ours = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
            let want = replay.localize(value.as_str().unwrap());
            if ours != Some(want.as_str()) {
                problems.push(format!("header {name}: {ours:?}, recorded {want:?}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "exchange {i}: {method} {}: {}",
                req["path"],
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} exchanges of {} differ:\n{}",
        failures.len(),
        path.display(),
        failures.join("\n")
    );
    (server, replay)
}

#[test]
fn replays_the_real_servers_transcript() {
    let Some(path) = shared::transcript_path() else {
        blipp_tests::skip::skip(
            "the conformance test of the UNIS/MS test server",
            shared::MISSING,
        );
        return;
    };
    let (server, replay) = replay(&path, 26);
    // Every request the replay sent was logged, and so were the server's
    // own GETs of `metadata_URL` for the two `POST /events`.
    let log = server.requests();
    assert_eq!(log.len(), 28);
    let fetches: Vec<&str> = log
        .iter()
        .filter(|r| r.method == "GET" && r.target.starts_with("/metadata/"))
        .map(|r| r.target.as_str())
        .collect();
    let mid = &replay.ids["6b0702d6a8bcf76d3a74268b"];
    assert_eq!(
        fetches,
        [format!("/metadata/{mid}"), format!("/metadata/{mid}")]
    );
}

/// The real server's MS side with several mids at once: a batch lookup is
/// 404 as a whole when any mid has no collection, and a list `POST
/// /events` creates its first record only.
#[test]
fn replays_the_real_servers_events_transcript() {
    let Some(path) = shared::transcript_path()
        .map(|p| p.with_file_name("transcript-real-server-events.json"))
        .filter(|p| p.is_file())
    else {
        blipp_tests::skip::skip(
            "the conformance test of the test server's MS side",
            shared::MISSING,
        );
        return;
    };
    let (server, _) = replay(&path, 9);
    // The list POST created one collection: one GET of metadata_URL for
    // it, besides the single POST's.
    let fetches = server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.target.starts_with("/metadata/"))
        .count();
    assert_eq!(fetches, 2);
}
