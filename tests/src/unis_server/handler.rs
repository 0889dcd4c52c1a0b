//! The answers of the test server, modelled on the periscope server
//! (`develop`) and checked against the recorded transcript of the real one:
//! status codes, headers the agent reads, body shapes, error messages.

use std::sync::Mutex;

use serde_json::{Value, json};

use super::query;
use super::schemas::{BASE, Schemas};
use super::store::{EventCollection, Store, now_us};

const PSJSON: &str = "application/perfsonar+json";
const JSON: &str = "application/json";

/// A request, reduced to what the server looks at.
#[derive(Debug)]
pub struct Req {
    /// Method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query string without `?`.
    pub query: String,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Accept`.
    pub accept: Option<String>,
    /// `User-Agent`: [`OWN_AGENT`](super::OWN_AGENT) on the server's own
    /// requests.
    pub user_agent: Option<String>,
    /// `Host` (for `selfRef` and `Location`, as the real server builds them
    /// from the request URL).
    pub host: String,
    /// The raw body.
    pub body: Vec<u8>,
}

/// An answer.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers besides the ones hyper adds.
    pub headers: Vec<(&'static str, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Resp {
    fn json(status: u16, content_type: String, body: &Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", content_type)],
            body: serde_json::to_vec_pretty(body).unwrap_or_default(),
        }
    }

    fn message(status: u16, content_type: &str, message: &str) -> Self {
        Self::json(
            status,
            content_type.to_owned(),
            &json!({ "message": message }),
        )
    }

    fn empty(status: u16, content_type: Option<String>) -> Self {
        Self {
            status,
            headers: content_type
                .map(|c| vec![("Content-Type", c)])
                .unwrap_or_default(),
            body: Vec::new(),
        }
    }

    fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// A failure the test asked for: answer `status` to matching requests.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Only this method (any when `None`).
    pub method: Option<String>,
    /// Paths starting with this.
    pub path_prefix: String,
    /// The status to answer.
    pub status: u16,
    /// The request is handled first (what it stores stays stored) and the
    /// fault's answer replaces the real one: an answer lost after the
    /// server did the work.
    pub after_handling: bool,
}

/// What every request handler shares.
pub struct Shared {
    /// The records, events, data and request log.
    pub store: Mutex<Store>,
    /// The real server's schemas, when `../shared` is there.
    pub schemas: Option<std::sync::Arc<Schemas>>,
    /// Fetches `metadata_URL` on `POST /events`, as the real MS does.
    pub fetcher: reqwest::Client,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Injected failures.
    pub faults: Mutex<Vec<Fault>>,
    /// Each `POST /events` takes this long (see `Options`).
    pub events_delay: Option<std::time::Duration>,
}

/// The network-resource collections and the schema of each.
fn schema_of(collection: &str) -> Option<&'static str> {
    Some(match collection {
        "nodes" => "node",
        "ports" => "port",
        "links" => "link",
        "services" => "service",
        "measurements" => "measurement",
        "metadata" => "metadata",
        _ => return None,
    })
}

fn profile(schema: &str) -> String {
    format!("{BASE}{schema}#")
}

/// Tornado's content negotiation: the accepted type named in `Accept`
/// (`*/*` means plain JSON); a missing header means perfsonar+json.
fn accept_type(req: &Req) -> Result<&'static str, Resp> {
    let raw = req.accept.as_deref().unwrap_or(PSJSON);
    let offered: Vec<&str> = raw
        .split(',')
        .map(|t| t.split(';').next().unwrap_or("").trim())
        .collect();
    if offered.contains(&"*/*") {
        return Ok(JSON);
    }
    if offered.contains(&PSJSON) {
        return Ok(PSJSON);
    }
    Err(exc_info(&format!(
        "HTTP 406: Unsupported accept content type '{raw}'"
    )))
}

/// The real server answers an unsupported type with a 500 whose body
/// names the 415 (or 406) raised inside it.
fn exc_info(what: &str) -> Resp {
    Resp::json(
        500,
        PSJSON.to_owned(),
        &json!({ "exc_info": format!("(<class 'tornado.httpclient.HTTPClientError'>, {what}, <traceback object>)") }),
    )
}

/// The profile check (`profile=` present but empty is a 400) and the
/// content type check (anything but perfsonar+json is refused).
fn check_body_type(req: &Req, accept: &str) -> Result<(), Resp> {
    let ct = req.content_type.as_deref().unwrap_or(PSJSON);
    if let Some(at) = ct.rfind("profile=") {
        let profile: String = ct[at + "profile=".len()..]
            .chars()
            .take_while(|c| *c != ';' && *c != ' ')
            .collect();
        if profile.is_empty() {
            return Err(Resp::message(
                400,
                accept,
                &format!("Validation Error - Bad Content Type {ct}"),
            ));
        }
    }
    let tokens: Vec<&str> = ct
        .split(|c: char| !(c.is_ascii_alphanumeric() || "/+_*-".contains(c)))
        .filter(|t| t.contains('/'))
        .collect();
    if tokens.contains(&PSJSON) {
        return Ok(());
    }
    if tokens.contains(&"text/html") {
        return Err(Resp::message(
            400,
            accept,
            "No Post method is implemented for this content type",
        ));
    }
    Err(exc_info(&format!(
        "HTTP 415: Unsupported content type '{ct}'"
    )))
}

fn parse_body(req: &Req, accept: &str) -> Result<Value, Resp> {
    serde_json::from_slice(&req.body)
        .map_err(|e| Resp::message(400, accept, &format!("malformatted json request - {e}.")))
}

fn as_list(body: Value) -> Vec<Value> {
    match body {
        Value::Array(items) => items,
        other => vec![other],
    }
}

impl Shared {
    fn base(&self, req: &Req) -> String {
        format!("{}://{}", self.scheme, req.host)
    }

    fn validate(&self, schema: &str, record: &Value) -> Result<(), String> {
        match &self.schemas {
            Some(s) => s.validate(schema, record),
            None => Ok(()),
        }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fault(&self, req: &Req) -> Option<(Resp, bool)> {
        let faults = self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        faults
            .iter()
            .find(|f| {
                req.path.starts_with(&f.path_prefix)
                    && f.method.as_deref().is_none_or(|m| m == req.method)
            })
            .map(|f| {
                (
                    Resp::message(f.status, PSJSON, "fault injected by the test"),
                    f.after_handling,
                )
            })
    }

    /// Answers one request and logs it.
    pub async fn handle(&self, req: Req) -> Resp {
        let resp = match self.fault(&req) {
            Some((r, false)) => r,
            Some((r, true)) => {
                self.route(&req).await;
                r
            }
            None => self.route(&req).await,
        };
        let body = serde_json::from_slice(&req.body).ok();
        let target = if req.query.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{}", req.path, req.query)
        };
        self.store().log.push(super::store::LoggedRequest {
            method: req.method,
            target,
            content_type: req.content_type,
            accept: req.accept,
            own: req.user_agent.as_deref() == Some(super::OWN_AGENT),
            body,
            status: resp.status,
            at: now_us(),
        });
        resp
    }

    async fn route(&self, req: &Req) -> Resp {
        let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
        let accept = match accept_type(req) {
            Ok(a) => a,
            Err(r) => return r,
        };
        match (req.method.as_str(), segments.as_slice()) {
            ("GET", [""]) => self.root(req),
            ("POST", ["events"]) => self.post_events(req, accept).await,
            ("GET", ["events"]) => self.get_events(req, accept),
            ("POST", ["data"]) => self.post_data(req, accept),
            ("GET", ["data", mid]) => self.get_data(req, accept, mid),
            ("GET", ["data"]) => {
                Resp::message(403, accept, "Data request must include a metadata id")
            }
            (method, [collection, rest @ ..]) if rest.len() <= 1 => {
                let Some(schema) = schema_of(collection) else {
                    return Resp::message(
                        404,
                        accept,
                        "the test server does not serve this collection",
                    );
                };
                let id = rest.first().copied();
                match (method, id) {
                    ("POST", None) => self.post(req, accept, collection, schema),
                    ("GET", None) => self.list(req, accept, collection, schema),
                    ("GET", Some(id)) => self.get_one(accept, collection, schema, id),
                    ("PUT", Some(id)) => self.put(req, accept, collection, schema, id),
                    ("DELETE", Some(id)) => {
                        self.store().delete(collection, id);
                        Resp::empty(204, None)
                    }
                    (_, None) => Resp::message(
                        400,
                        accept,
                        "Validation Error - NetworkResource ID is not defined.",
                    ),
                    _ => Resp::message(405, accept, "method not allowed"),
                }
            }
            _ => Resp::message(404, accept, "not found"),
        }
    }

    fn root(&self, req: &Req) -> Resp {
        let base = self.base(req);
        let links: Vec<Value> = [
            ("links", "link"),
            ("ports", "port"),
            ("nodes", "node"),
            ("services", "service"),
            ("events", "datum"),
            ("data", "data"),
            ("metadata", "metadata"),
            ("measurements", "measurement"),
        ]
        .iter()
        .map(|(col, schema)| {
            json!({"href": format!("{base}/{col}"), "rel": "full",
                   "targetschema": {"type": "array", "items": {"rel": "full", "href": profile(schema)}}})
        })
        .collect();
        Resp::json(200, JSON.to_owned(), &Value::Array(links))
    }

    /// `POST /{collection}`: one record or a list; the server fills `id`
    /// (when absent), `ts` (when absent or zero), `selfRef` and `$schema`,
    /// then validates and stores a new version of each.
    fn post(&self, req: &Req, accept: &str, collection: &str, schema: &str) -> Resp {
        if let Err(r) = check_body_type(req, accept) {
            return r;
        }
        let body = match parse_body(req, accept) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let base = self.base(req);
        let mut records = Vec::new();
        {
            let mut store = self.store();
            for item in as_list(body) {
                let Value::Object(mut record) = item else {
                    return Resp::message(400, accept, "Not valid body - not an object");
                };
                let id = match record.get("id").and_then(Value::as_str) {
                    Some(id) if !id.is_empty() => id.to_owned(),
                    _ => store.new_id(),
                };
                record.insert("id".into(), Value::String(id.clone()));
                if record.get("ts").is_none_or(|t| t.is_null() || t == 0) {
                    record.insert("ts".into(), Value::from(now_us()));
                }
                record.insert(
                    "selfRef".into(),
                    Value::String(format!("{base}/{collection}/{id}")),
                );
                record
                    .entry("$schema")
                    .or_insert_with(|| Value::String(profile(schema)));
                records.push(Value::Object(record));
            }
            for record in &records {
                if let Err(e) = self.validate(schema, record) {
                    return Resp::message(
                        400,
                        accept,
                        &format!("Not valid body - Validation error from json - {e}"),
                    );
                }
            }
            for record in &records {
                let id = record["id"].as_str().unwrap_or_default();
                let ts = record["ts"].as_i64().unwrap_or_default();
                if store.has_version(collection, id, ts) {
                    return Resp::message(
                        409,
                        accept,
                        &format!(
                            "Could not process the POST request - E11000 duplicate key error: {id}:{ts}"
                        ),
                    );
                }
            }
            for record in &records {
                store.insert(collection, record.clone());
            }
        }
        let content_type = format!("{accept} ;profile={}", profile(schema));
        if let [one] = records.as_slice() {
            let id = one["id"].as_str().unwrap_or_default();
            Resp::json(201, content_type, one)
                .header("Location", format!("{base}/{collection}/{id}"))
        } else {
            Resp::json(201, content_type, &Value::Array(records))
        }
    }

    fn get_one(&self, accept: &str, collection: &str, schema: &str, id: &str) -> Resp {
        let content_type = format!("{accept}; profile={}", profile(schema));
        match self.store().latest(collection, id) {
            Some(record) => Resp::json(200, content_type, &record).header("X-Count", "1".into()),
            None => Resp::json(200, content_type, &json!([])).header("X-Count", "0".into()),
        }
    }

    fn list(&self, req: &Req, accept: &str, collection: &str, schema: &str) -> Resp {
        let q = match query::parse(&req.query) {
            Ok(q) => q,
            Err(e) => return Resp::message(403, accept, &e),
        };
        let (records, count) = self.store().query(collection, &q);
        Resp::json(
            200,
            format!("{accept}; profile={}", profile(schema)),
            &Value::Array(records),
        )
        .header("X-Count", count.to_string())
    }

    /// `PUT /{collection}/{id}`: sets the body's top-level keys on the
    /// newest version (MongoDB `$set`), renews `ts` unless the body has one.
    /// The real server does not validate a PUT; this one validates the
    /// merged record, so that the agent cannot store what a later POST of
    /// the same record would be refused for.
    fn put(&self, req: &Req, accept: &str, collection: &str, schema: &str, id: &str) -> Resp {
        if let Err(r) = check_body_type(req, accept) {
            return r;
        }
        let body = match parse_body(req, accept) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Value::Object(body) = body else {
            return Resp::message(400, accept, "malformatted json request - not an object.");
        };
        if let Some(other) = body.get("id").and_then(Value::as_str)
            && other != id
        {
            return Resp::message(
                400,
                accept,
                &format!("Different ids in the URL {id}' and in the body {other}"),
            );
        }
        let base = self.base(req);
        let mut store = self.store();
        let Some(Value::Object(mut record)) = store.latest(collection, id) else {
            return Resp::message(
                404,
                accept,
                "Could not process the PUT request - no such resource",
            );
        };
        let renew = body.get("ts").is_none_or(|t| t.is_null() || t == 0);
        for (k, v) in body {
            record.insert(k, v);
        }
        if renew {
            record.insert("ts".into(), Value::from(now_us()));
        }
        record.insert("id".into(), Value::String(id.to_owned()));
        record.insert(
            "selfRef".into(),
            Value::String(format!("{base}/{collection}/{id}")),
        );
        let record = Value::Object(record);
        // The real server stores a PUT unvalidated; this one validates, but
        // not a measurement's `scheduled_times`, whose schema reference
        // dangles (see `Schemas::load`): the original BLiPP published them
        // by PUT, and blipp does the same.
        let mut checked = record.clone();
        if collection == "measurements"
            && let Value::Object(m) = &mut checked
        {
            m.remove("scheduled_times");
        }
        if let Err(e) = self.validate(schema, &checked) {
            return Resp::message(
                400,
                accept,
                &format!("Not valid body - Validation error from json - {e}"),
            );
        }
        store.replace_latest(collection, id, record);
        // Tornado drops the representation headers of a 204.
        Resp::empty(204, None)
    }

    /// `POST /events`: creates the MS collection of the metadata named by
    /// `metadata_URL`, which the server GETs itself. Whatever goes wrong in
    /// that step is a 409, as on the real server (it wraps every exception
    /// of its insert step so).
    async fn post_events(&self, req: &Req, accept: &str) -> Resp {
        if let Some(d) = self.events_delay {
            tokio::time::sleep(d).await;
        }
        if let Err(r) = check_body_type(req, accept) {
            return r;
        }
        let body = match parse_body(req, accept) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Some(Value::Object(mut record)) = as_list(body).into_iter().next() else {
            return Resp::message(400, accept, "Not valid body - not an object");
        };
        let conflict = |why: &str| {
            Resp::message(
                409,
                accept,
                &format!("Could not process the POST request - {why}"),
            )
        };
        let base = self.base(req);
        let generated = self.store().new_id();
        record.insert(
            "selfRef".into(),
            Value::String(format!("{base}/events/{generated}")),
        );
        record
            .entry("$schema")
            .or_insert_with(|| Value::String(profile("datum")));
        let Some(url) = record
            .get("metadata_URL")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return conflict("'metadata_URL'");
        };
        let fetched = self.fetcher.get(&url).header("Accept", PSJSON).send().await;
        let metadata: Value = match fetched {
            Ok(r) if r.status().is_success() => {
                match r.bytes().await.map(|b| serde_json::from_slice(&b)) {
                    Ok(Ok(v)) => v,
                    Ok(Err(e)) => return conflict(&e.to_string()),
                    Err(e) => return conflict(&e.to_string()),
                }
            }
            Ok(r) => return conflict(&format!("HTTP {}", r.status().as_u16())),
            Err(e) => return conflict(&e.to_string()),
        };
        let Some(mid) = metadata
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return conflict("list indices must be integers or slices, not str");
        };
        let mut store = self.store();
        if store.has_collection(&mid) {
            return conflict("event collection exists already");
        }
        record.insert("id".into(), Value::String(mid.clone()));
        record.insert("ts".into(), Value::from(now_us()));
        let record = Value::Object(record);
        store.events.insert(
            mid.clone(),
            EventCollection {
                record: record.clone(),
            },
        );
        Resp::json(
            201,
            format!("{accept} ;profile={}", profile("datum")),
            &record,
        )
        .header("Location", format!("{base}/events/{mid}"))
    }

    /// `GET /events?mids=a,b`: statistics of each collection, newest
    /// argument first; 404 when any of them does not exist.
    fn get_events(&self, req: &Req, accept: &str) -> Resp {
        let store = self.store();
        let mut mids: Vec<String> = Vec::new();
        let mut asked = false;
        for (k, v) in url::form_urlencoded::parse(req.query.as_bytes()) {
            if k == "mids" {
                asked = true;
                mids.extend(v.split(',').filter(|m| !m.is_empty()).map(str::to_owned));
            }
        }
        if !asked {
            mids = store
                .events
                .keys()
                .chain(store.data.keys())
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
        }
        let mut out = Vec::new();
        for mid in &mids {
            if !store.has_collection(mid) {
                return Resp::message(404, accept, "No resources match query.");
            }
            let data = store.data.get(mid).map(Vec::as_slice).unwrap_or_default();
            let size: usize = data.iter().map(|d| d.to_string().len()).sum();
            let avg = if data.is_empty() {
                0.0
            } else {
                size as f64 / data.len() as f64
            };
            out.insert(
                0,
                json!({"mid": mid, "generic": {"count": data.len(), "size": size, "avgObjSize": avg,
                       "storageSize": size, "scaleFactor": 1, "capped": "No"}, "queried": {}}),
            );
        }
        Resp::json(
            200,
            format!("{accept}; profile={}", profile("datum")),
            &Value::Array(out),
        )
    }

    /// `POST /data`: `[{"mid":..,"data":[{"ts":..,..},..]},..]`, each item
    /// validated against the data schema; 201 with no body.
    fn post_data(&self, req: &Req, accept: &str) -> Resp {
        if let Err(r) = check_body_type(req, accept) {
            return r;
        }
        let body = match parse_body(req, accept) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let base = self.base(req);
        let mut items: Vec<(String, Vec<Value>)> = Vec::new();
        for item in as_list(body) {
            let Value::Object(mut item) = item else {
                return Resp::message(400, accept, "Not valid body - not an object");
            };
            let Some(mid) = item.get("mid").and_then(Value::as_str).map(str::to_owned) else {
                return Resp::message(400, accept, "Not valid body - 'mid'");
            };
            item.insert(
                "selfRef".into(),
                Value::String(format!("{base}/data/{mid}")),
            );
            item.entry("$schema")
                .or_insert_with(|| Value::String(profile("data")));
            let item = Value::Object(item);
            if let Err(e) = self.validate("data", &item) {
                return Resp::message(
                    400,
                    accept,
                    &format!("Not valid body - Validation error from json - {e}"),
                );
            }
            let data = item["data"].as_array().cloned().unwrap_or_default();
            items.push((mid, data));
        }
        let mut store = self.store();
        for (mid, data) in items {
            store.data.entry(mid).or_default().extend(data);
        }
        Resp::empty(201, Some(format!("{accept} ;profile={}", profile("data"))))
    }

    fn get_data(&self, req: &Req, accept: &str, mid: &str) -> Resp {
        let q = match query::parse(&req.query) {
            Ok(q) => q,
            Err(e) => return Resp::message(403, accept, &e),
        };
        let store = self.store();
        let data: Vec<Value> = store
            .data
            .get(mid)
            .map(|d| d.iter().filter(|x| q.matches(x)).cloned().collect())
            .unwrap_or_default();
        if data.is_empty() {
            return Resp::json(200, JSON.to_owned(), &json!([]));
        }
        let count = data.len();
        Resp::json(
            200,
            format!("{accept}; profile={}", profile("data")),
            &Value::Array(data),
        )
        .header("X-Count", count.to_string())
    }
}
