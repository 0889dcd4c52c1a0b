//! Registration in UNIS: the node, its ports, the service, one
//! measurement per probe, one metadata per (measurement, subject, event
//! type) — in the original BLiPP's order, but lean and stable:
//!
//! - every lookup is one filtered `GET` of a whole collection slice
//!   (`unique=true`, `id=a,b,c`, `parameters.measurement.href=a,b,c`) and
//!   every creation one list `POST`, so registering N probes with M event
//!   types costs a handful of requests, not N·M;
//! - records that exist are found again (node by id or URN, ports by MAC,
//!   service by id or by name and node, measurements by probe name,
//!   metadata by measurement, subject and event type), so a restart with
//!   an unchanged configuration writes nothing new and keeps every mid;
//! - nothing unchanged is written.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

mod edits;
mod series;
mod written;

use super::UnisError;
use super::client::Endpoint;
use super::record::{self, differs, id_of};
use crate::config::policy::{LOCAL_ONLY, Refusal};
use crate::config::{self, Config, Local, Precedence};
use crate::host::HostInfo;
use crate::sample::Name;
use crate::trust;
use written::Written;

/// How blippd was told to find or make its records (`-n`, `--urn`, `-e`,
/// `--new`, `--no-query`, `--override`).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `-n`: the node's id.
    pub node_id: Option<String>,
    /// `--urn`: the node's URN (else derived from the host).
    pub urn: Option<String>,
    /// `-e use`: also run measurements of this service that others made.
    pub use_existing: bool,
    /// `--new`: register a fresh service, ignoring any in UNIS.
    pub fresh_service: bool,
    /// Read the configuration from the service in UNIS (not `--no-query`).
    pub read_config: bool,
    /// Who wins between the local configuration and UNIS.
    pub precedence: Precedence,
}

/// One probe's measurement.
#[derive(Clone, Debug)]
pub struct MeasurementRef {
    /// Its id.
    pub id: String,
    /// Its `selfRef`.
    pub href: String,
    /// The event types it lists.
    pub event_types: BTreeSet<String>,
    /// blipp keeps it up to date (false: made by others, `-e use`).
    pub ours: bool,
    /// The record as last written or read.
    record: Value,
}

/// What a series of samples is: a probe, a local subject, an event type.
pub type SeriesKey = (Name, Name, Name);

/// The metadata of one series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    /// The metadata id: the mid.
    pub mid: String,
    /// The metadata's `selfRef` (the MS's `metadata_URL`).
    pub href: String,
    /// The UNIS resource it is about.
    pub subject_href: String,
    /// This blippd created the metadata: its MS collection cannot exist
    /// yet.
    pub fresh: bool,
}

/// A registration in progress or done, and everything it found.
pub struct Session {
    unis: Endpoint,
    options: Options,
    local: Local,
    config: Config,
    doc: Value,
    /// The configuration in UNIS failed validation: the one in effect
    /// stays, and the service is only kept alive, not overwritten.
    remote_invalid: bool,
    /// The last refusal, so that a poll does not log the same one again.
    refused: Option<String>,
    /// What the local trust policy kept out of the service in UNIS.
    service_refusals: Vec<Refusal>,
    /// What it kept out of measurements of others (`-e use`).
    measurement_refusals: Vec<Refusal>,
    /// What it kept out of edits of blipp's own measurements in UNIS.
    edit_refusals: Vec<Refusal>,
    /// blipp's measurements whose edit in UNIS was refused (in part): not
    /// overwritten, with the record blippd last knew, so that the edit is
    /// screened again at each poll and its refusal stays shown.
    held: HashMap<String, Value>,
    /// The measurements of others seen at the last sync, by id, with their
    /// configuration (`-e use` follows what changes in them).
    others_seen: BTreeMap<String, Value>,
    /// The refusals logged already: each is logged once while it lasts.
    logged_refusals: BTreeSet<Refusal>,
    /// What blippd last wrote into the service record.
    written: Written,
    /// Keys changed both in UNIS and in the local file, logged already.
    logged_conflicts: BTreeSet<String>,
    /// Bumped whenever `config` changes.
    generation: u64,
    host: Option<HostInfo>,
    urn: String,
    node: Option<Value>,
    ports: HashMap<String, String>,
    /// Interfaces gone before their port could be registered: their
    /// samples are about the node.
    portless: HashSet<String>,
    service: Option<Value>,
    renewed: Option<Instant>,
    measurements: HashMap<String, MeasurementRef>,
    series: HashMap<SeriesKey, Series>,
    /// Measurements of others (`-e use`) run on their own
    /// `scheduled_times`, or wait for them: read again at each poll.
    follow_measurements: bool,
    /// Those that wait, logged once.
    waiting: BTreeSet<String>,
}

/// Where the memory of the last service written lives, in the spool
/// directory (the state directory of the systemd units).
const WRITTEN_FILE: &str = "service-written.json";

/// A `GET` with a list of values in one parameter is split so that no URL
/// grows beyond this many bytes of values.
const MAX_LIST_CHARS: usize = 3000;

fn chunks_of(values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for v in values {
        if !current.is_empty() && current.len() + v.len() + 1 > MAX_LIST_CHARS {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(v);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

impl Session {
    /// A session for `local`, whose resolved configuration is `config`.
    pub fn new(unis: Endpoint, options: Options, local: Local, config: Config) -> Self {
        let doc = local.doc.clone();
        let written = Written::load(config.settings.spool_dir.join(WRITTEN_FILE));
        Self {
            unis,
            options,
            local,
            config,
            doc,
            remote_invalid: false,
            refused: None,
            service_refusals: Vec::new(),
            measurement_refusals: Vec::new(),
            edit_refusals: Vec::new(),
            held: HashMap::new(),
            others_seen: BTreeMap::new(),
            logged_refusals: BTreeSet::new(),
            written,
            logged_conflicts: BTreeSet::new(),
            generation: 0,
            host: None,
            urn: String::new(),
            node: None,
            ports: HashMap::new(),
            portless: HashSet::new(),
            service: None,
            renewed: None,
            measurements: HashMap::new(),
            series: HashMap::new(),
            follow_measurements: false,
            waiting: BTreeSet::new(),
        }
    }

    /// UNIS requests sent so far.
    pub fn requests(&self) -> u64 {
        self.unis.requests()
    }

    /// Request bytes sent to UNIS so far.
    pub fn bytes_sent(&self) -> u64 {
        self.unis.bytes_sent()
    }

    /// The configuration in effect.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes whenever [`Session::config`] does.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the node, service and measurements are registered.
    pub fn registered(&self) -> bool {
        self.service.is_some()
    }

    /// The measurement of a probe.
    pub fn measurement(&self, probe: &str) -> Option<&MeasurementRef> {
        self.measurements.get(probe)
    }

    /// The metadata of a series, when registered for its current subject.
    pub fn series(&self, key: &SeriesKey) -> Option<&Series> {
        self.series.get(key)
    }

    /// The service's `ttl`, seconds (also the TTL of the slots that
    /// `simple_avoid` publishes).
    pub fn ttl(&self) -> Duration {
        let ttl = self
            .doc
            .get("ttl")
            .and_then(Value::as_u64)
            .unwrap_or(600)
            .max(2);
        Duration::from_secs(ttl)
    }

    /// When the service's TTL must be renewed next: half way through it.
    pub fn renew_at(&self) -> Option<Instant> {
        self.renewed.map(|t| t + self.ttl() / 2)
    }

    async fn host(&mut self, fresh: bool) -> &HostInfo {
        if fresh || self.host.is_none() {
            let settings = &self.config.settings;
            let (proc_dir, sys_dir) = (settings.proc_dir.clone(), settings.sys_dir.clone());
            // The FQDN lookup may wait on DNS: not on a runtime thread.
            let host = tokio::task::spawn_blocking(move || HostInfo::gather(&proc_dir, &sys_dir))
                .await
                .expect("gathering host facts does not panic");
            self.host = Some(host);
        }
        self.host.as_ref().expect("just gathered")
    }

    /// Registers everything; on success the session is [`registered`]
    /// and its configuration is the one in effect (merged with UNIS).
    ///
    /// [`registered`]: Session::registered
    pub async fn register(&mut self) -> Result<(), UnisError> {
        let started = self.unis.requests();
        self.host(false).await;
        let host = self.host.clone().expect("gathered");
        self.urn = self.options.urn.clone().unwrap_or_else(|| host.urn());
        let found = match &self.options.node_id {
            Some(id) => self.unis.get_list(&format!("/nodes/{id}"), &[]).await?,
            None => {
                self.unis
                    .get_list("/nodes", &[("urn", &self.urn), ("unique", "true")])
                    .await?
            }
        };
        self.node = found.into_iter().next();
        self.sync_ports(&host).await?;
        let node_action = self.sync_node(&host).await?;
        let service_created = self.register_service().await?;
        let (reused, created) = self.sync_measurements(service_created, None).await?;
        tracing::info!(
            requests = self.unis.requests() - started,
            node = node_action,
            ports = self.ports.len(),
            service = if service_created { "created" } else { "found" },
            measurements_reused = reused,
            measurements_written = created,
            metadata_found = self.series.len(),
            "registered in UNIS"
        );
        Ok(())
    }

    /// The UNIS endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.unis
    }

    /// The node's `selfRef`, once registered.
    pub fn node_href(&self) -> Option<&str> {
        self.node.as_ref().and_then(|n| str_at(n, "/selfRef"))
    }

    /// Finds this host's ports among the node's, by MAC; creates the
    /// missing ones and updates changed ones in one list `POST`.
    async fn sync_ports(&mut self, host: &HostInfo) -> Result<(), UnisError> {
        let linked: Vec<String> = self
            .node
            .as_ref()
            .map(record::port_links)
            .unwrap_or_default()
            .iter()
            .map(|href| id_of(href).to_owned())
            .collect();
        let mut existing = Vec::new();
        for ids in chunks_of(&linked) {
            existing.extend(
                self.unis
                    .get_list("/ports", &[("id", &ids), ("unique", "true")])
                    .await?,
            );
        }
        let matches = record::match_ports(&existing, &host.interfaces);
        let mut writes = Vec::new();
        let mut hrefs = HashMap::new();
        for (iface, m) in host.interfaces.iter().zip(matches) {
            let old = m.map(|i| &existing[i]);
            let id = old
                .and_then(|p| p.get("id").and_then(Value::as_str))
                .map_or_else(record::new_id, str::to_owned);
            let desired = record::port(old, &id, iface, &port_urn(&self.urn, &iface.name));
            let href = old
                .and_then(|p| str_at(p, "/selfRef"))
                .map_or_else(|| format!("{}/ports/{id}", self.unis.base()), str::to_owned);
            if old.is_none_or(|o| differs(o, &desired)) {
                writes.push(desired);
            }
            hrefs.insert(iface.name.clone(), href);
        }
        if !writes.is_empty() {
            for stored in self
                .unis
                .post("/ports", &Value::Array(writes), "port")
                .await?
            {
                if let (Some(name), Some(href)) =
                    (str_at(&stored, "/name"), str_at(&stored, "/selfRef"))
                {
                    hrefs.insert(name.to_owned(), href.to_owned());
                }
            }
        }
        self.ports.extend(hrefs);
        Ok(())
    }

    /// Creates the node, or updates it when its facts or port links
    /// changed.
    async fn sync_node(&mut self, host: &HostInfo) -> Result<&'static str, UnisError> {
        let mut links: Vec<String> = self.ports.values().cloned().collect();
        links.sort();
        let id = self
            .node
            .as_ref()
            .and_then(|n| n.get("id").and_then(Value::as_str).map(str::to_owned))
            .or_else(|| self.options.node_id.clone())
            .unwrap_or_else(record::new_id);
        let desired = record::node(self.node.as_ref(), &id, host, &self.urn, &links);
        let Some(old) = self.node.clone() else {
            let stored = self.unis.post("/nodes", &desired, "node").await?;
            self.node = stored.into_iter().next();
            if self.node_href().is_none() {
                return Err(UnisError::Unexpected {
                    method: "POST",
                    url: format!("{}/nodes", self.unis.base()),
                    what: "the stored node has no selfRef".into(),
                });
            }
            return Ok("created");
        };
        if !differs(&old, &desired) {
            return Ok("found");
        }
        self.unis
            .put(&format!("/nodes/{id}"), &desired, "node")
            .await?;
        let mut now = desired;
        now["selfRef"] = old.get("selfRef").cloned().unwrap_or(Value::Null);
        self.node = Some(now);
        Ok("updated")
    }

    /// The configuration from the local one and `service` (from UNIS).
    /// A configuration in UNIS that does not validate leaves the one in
    /// effect as it is (the local one before the first good one); the
    /// refusal is logged once per distinct error.
    fn effective(&mut self, service: Option<&Value>) -> Value {
        self.remote_invalid = false;
        let Some(service) = service.filter(|_| self.options.read_config) else {
            return self.local.doc.clone();
        };
        let id = service.get("id").and_then(Value::as_str).unwrap_or("?");
        let origin = format!("UNIS service {id}");
        let (changes, conflicts) = self.written.changes(service, &self.local.doc);
        for pointer in conflicts {
            if self.logged_conflicts.insert(pointer.clone()) {
                tracing::warn!(%origin, %pointer, "changed both in UNIS and in the local file since blippd last wrote the service; UNIS wins");
            }
        }
        match trust::merge_service(
            &self.local,
            service,
            &changes,
            &origin,
            self.options.precedence,
        ) {
            Ok((doc, refusals)) => {
                self.refused = None;
                self.service_refusals = refusals;
                self.log_refusals();
                doc
            }
            Err(e) => {
                let text = e.to_string();
                if self.refused.as_deref() == Some(text.as_str()) {
                    tracing::debug!(error = %text, "the configuration in UNIS is still invalid");
                } else {
                    tracing::error!(error = %text, "the configuration in UNIS is invalid; the one in effect stays, and the service's configuration is left as it is");
                    self.refused = Some(text);
                }
                self.remote_invalid = true;
                if self.generation > 0 {
                    self.doc.clone()
                } else {
                    self.local.doc.clone()
                }
            }
        }
    }

    /// Logs each refusal of the local trust policy once while it lasts:
    /// one that goes away and comes back is logged again.
    fn log_refusals(&mut self) {
        let now: BTreeSet<Refusal> = self
            .service_refusals
            .iter()
            .chain(&self.measurement_refusals)
            .chain(&self.edit_refusals)
            .cloned()
            .collect();
        for r in now.difference(&self.logged_refusals) {
            tracing::warn!(
                origin = %r.origin,
                pointer = %r.pointer,
                value = %r.value,
                rule = %r.rule,
                "refused by the local trust policy; the rest of the configuration applies"
            );
        }
        self.logged_refusals = now;
    }

    /// Every refusal in effect, for `blippcmd status`.
    fn refusals(&self) -> Vec<Refusal> {
        self.service_refusals
            .iter()
            .chain(&self.measurement_refusals)
            .chain(&self.edit_refusals)
            .cloned()
            .collect()
    }

    /// Makes `doc` the configuration in effect (with measurements of
    /// others adopted later); true when it changed, or only what was
    /// refused in it did (which `blippcmd status` shows).
    fn adopt_doc(&mut self, doc: Value) -> bool {
        if record::without_server_fields(&doc) == record::without_server_fields(&self.doc)
            && self.generation > 0
        {
            let refused = self.refusals();
            if self.config.refused == refused {
                return false;
            }
            self.config.refused = refused;
            self.generation += 1;
            return true;
        }
        match config::resolve(doc.clone()) {
            Ok(c) => {
                self.doc = doc;
                self.config = c;
                self.config.refused = self.refusals();
                self.generation += 1;
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "the merged configuration does not resolve; keeping the current one");
                false
            }
        }
    }

    /// The service record blipp writes: the configuration in effect,
    /// running on the node, without the server's fields.
    fn service_body(&self, id: &str) -> Value {
        let mut body = record::without_server_fields(&self.doc);
        // The trust policy and command containment stay on the host.
        if let Some(conf) = body
            .pointer_mut("/properties/configurations")
            .and_then(Value::as_object_mut)
        {
            for key in LOCAL_ONLY {
                conf.remove(key);
            }
        }
        let node = self.node_href().unwrap_or_default().to_owned();
        if self.remote_invalid {
            // Only keep it alive: the operator's configuration stays for
            // them to fix.
            return serde_json::json!({ "id": id, "runningOn": record::link(&node) });
        }
        body["id"] = Value::String(id.to_owned());
        body["runningOn"] = record::link(&node);
        if body.get("$schema").is_none() {
            body["$schema"] = Value::String(super::client::schema_uri("service"));
        }
        body
    }

    /// Finds the service (by id, else by name and node), merges its
    /// configuration, and writes the result back. Returns whether it was
    /// created.
    async fn register_service(&mut self) -> Result<bool, UnisError> {
        let node = self.node_href().unwrap_or_default().to_owned();
        let wanted_id = self
            .local
            .doc
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut found = None;
        if !self.options.fresh_service {
            if let Some(id) = &wanted_id {
                found = self
                    .unis
                    .get_list(&format!("/services/{id}"), &[])
                    .await?
                    .into_iter()
                    .next();
            }
            if found.is_none() {
                let name = self
                    .local
                    .doc
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("blipp")
                    .to_owned();
                found = self
                    .unis
                    .get_list(
                        "/services",
                        &[
                            ("name", &name),
                            ("runningOn.href", &node),
                            ("unique", "true"),
                        ],
                    )
                    .await?
                    .into_iter()
                    .next();
            }
        }
        let doc = self.effective(found.as_ref());
        self.adopt_doc(doc);
        let id = found
            .as_ref()
            .and_then(|s| s.get("id").and_then(Value::as_str).map(str::to_owned))
            .or(if self.options.fresh_service {
                None
            } else {
                wanted_id
            })
            .unwrap_or_else(record::new_id);
        let body = self.service_body(&id);
        let created = match found {
            Some(old) => {
                self.unis
                    .put(&format!("/services/{id}"), &body, "service")
                    .await?;
                self.written.record(&body, &self.local.doc);
                let mut now = body;
                now["selfRef"] = old.get("selfRef").cloned().unwrap_or(Value::Null);
                self.service = Some(now);
                false
            }
            None => {
                let stored = self.unis.post("/services", &body, "service").await?;
                self.service = stored.into_iter().next();
                self.written
                    .record(&body_with_id(&body, self.service.as_ref()), &self.local.doc);
                true
            }
        };
        self.renewed = Some(Instant::now());
        Ok(created)
    }

    fn service_href(&self) -> String {
        self.service
            .as_ref()
            .and_then(|s| str_at(s, "/selfRef"))
            .unwrap_or_default()
            .to_owned()
    }

    /// Reads the service back (one `GET`): a configuration changed in UNIS
    /// takes effect (its measurements follow); a deleted service is
    /// registered again. Returns whether the configuration changed.
    pub async fn refresh(&mut self) -> Result<bool, UnisError> {
        let Some(id) = self
            .service
            .as_ref()
            .and_then(|s| s.get("id").and_then(Value::as_str).map(str::to_owned))
        else {
            self.register().await?;
            return Ok(true);
        };
        let got = self.unis.get_list(&format!("/services/{id}"), &[]).await?;
        let Some(service) = got.into_iter().next() else {
            tracing::warn!(service = %id, "the service is gone from UNIS; registering it again");
            let before = self.generation;
            let body = self.service_body(&id);
            let stored = self.unis.post("/services", &body, "service").await?;
            self.service = stored.into_iter().next();
            self.written
                .record(&body_with_id(&body, self.service.as_ref()), &self.local.doc);
            self.renewed = Some(Instant::now());
            self.sync_measurements(false, None).await?;
            return Ok(self.generation != before);
        };
        // The measurements too (one more `GET`): an edit of one of blipp's
        // is an edit of its probe, and `-e use` follows those of others.
        let listed = self.list_measurements().await?;
        let edits = if self.options.read_config {
            self.measurement_edits(&listed)
        } else {
            Vec::new()
        };
        let merged = if edits.is_empty() && self.edit_refusals.is_empty() {
            service.clone()
        } else {
            self.with_measurement_edits(&service, &edits)
        };
        let doc = self.effective(Some(&merged));
        self.service = Some(service);
        let changed = self.adopt_doc(doc);
        let others = self.options.use_existing && self.others_changed(&listed);
        // A refused edit, held, is screened again at each poll and changes
        // nothing more until the operator changes it.
        if !changed && !others && edits.iter().all(|e| self.held.contains_key(&e.probe)) {
            if self.follow_measurements {
                return self.follow(listed).await;
            }
            return Ok(false);
        }
        if changed {
            tracing::info!(
                measurements_edited = edits.len(),
                "the configuration in UNIS changed"
            );
        } else if others {
            tracing::info!("the measurements of others changed (-e use)");
            self.reresolve();
        }
        self.sync_measurements(false, Some(listed)).await?;
        if edits.iter().any(|e| !self.held.contains_key(&e.probe)) {
            // The service follows its measurements at once: at the next
            // poll it holds the edit, which is then no longer one.
            self.renew().await?;
        }
        Ok(changed || others)
    }

    /// The configuration resolved again from the document in effect, for
    /// the measurements of others to be adopted anew.
    fn reresolve(&mut self) {
        match config::resolve(self.doc.clone()) {
            Ok(c) => {
                self.config = c;
                self.config.refused = self.refusals();
                self.generation += 1;
            }
            Err(e) => {
                tracing::error!(error = %e, "the configuration in effect does not resolve again");
            }
        }
    }

    /// Reads the measurements of others again (the configuration being
    /// unchanged): `scheduled_times` that arrived or changed on one that
    /// runs on them take effect. Returns whether the probes changed.
    async fn follow(&mut self, listed: Vec<Value>) -> Result<bool, UnisError> {
        let before = (self.generation, self.config.probes.clone());
        let mut fresh = match config::resolve(self.doc.clone()) {
            Ok(c) => c,
            Err(_) => return Ok(false),
        };
        fresh.refused = self.config.refused.clone();
        self.config = fresh;
        self.sync_measurements(false, Some(listed)).await?;
        let changed = self.config.probes != before.1;
        self.generation = before.0 + u64::from(changed);
        if changed {
            tracing::info!("the scheduled_times of a measurement of others changed");
        }
        Ok(changed)
    }

    /// Renews the service's TTL: a `PUT` of the service (the server renews
    /// `ts`).
    pub async fn renew(&mut self) -> Result<(), UnisError> {
        let Some(id) = self
            .service
            .as_ref()
            .and_then(|s| s.get("id").and_then(Value::as_str).map(str::to_owned))
        else {
            return Ok(());
        };
        let body = self.service_body(&id);
        self.unis
            .put(&format!("/services/{id}"), &body, "service")
            .await?;
        self.written.record(&body, &self.local.doc);
        self.renewed = Some(Instant::now());
        Ok(())
    }
}

/// `body` with the id the server stored it under (a `POST` may store it
/// under another id than the one sent).
fn body_with_id(body: &Value, stored: Option<&Value>) -> Value {
    let mut body = body.clone();
    if let Some(id) = stored.and_then(|s| s.get("id")) {
        body["id"] = id.clone();
    }
    body
}

/// A port's URN: the node's URN, `port=` and the interface name (with the
/// colon the original left out when the node URN had none at its end).
fn port_urn(node_urn: &str, ifname: &str) -> String {
    if node_urn.ends_with(':') {
        format!("{node_urn}port={ifname}")
    } else {
        format!("{node_urn}:port={ifname}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_are_split() {
        let values: Vec<String> = (0..300)
            .map(|i| format!("http://unis.example/measurements/{i:024}"))
            .collect();
        let chunks = chunks_of(&values);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.len() <= MAX_LIST_CHARS));
        let joined: Vec<&str> = chunks.iter().flat_map(|c| c.split(',')).collect();
        assert_eq!(joined.len(), 300);
        assert!(chunks_of(&[]).is_empty());
        assert_eq!(port_urn("urn:a:node=h:", "eth0"), "urn:a:node=h:port=eth0");
        assert_eq!(port_urn("urn:a:node=h", "eth0"), "urn:a:node=h:port=eth0");
    }
}
