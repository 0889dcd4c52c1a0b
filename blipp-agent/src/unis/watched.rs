//! The UNIS service records of services on the host that blippd watches
//! (`registration_probe`s): each is found again by `accessPoint` and
//! `serviceType` (without an access point, by `serviceType` and
//! `runningOn`), created once when missing, and written only when its
//! status or its configured fields change, or half way through its TTL.
//!
//! The probes say whether the service runs; this keeps the records, so
//! that only the UNIS sink talks to UNIS and a probe without UNIS still
//! reports liveness. A tick with an unchanged status costs a lookup by
//! probe name and nothing else.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::UnisError;
use super::client::{Endpoint, schema_uri};
use super::record;
use crate::config::Config;
use crate::probe::registration::{self, Options};
use crate::sample::Sample;

/// The original's TTL when `service_ttl` is not set, seconds.
const TTL_DEFAULT: u64 = 600;

/// One watched service's record.
struct Record {
    options: Options,
    /// The latest status the probe reported (`true`: ON).
    on: Option<bool>,
    /// The record's id, once found or created.
    id: Option<String>,
    /// The body last written.
    written: Option<Value>,
    renewed: Option<Instant>,
}

impl Record {
    fn ttl(&self) -> Duration {
        Duration::from_secs(self.options.service_ttl.unwrap_or(TTL_DEFAULT).max(2))
    }

    fn renew_at(&self) -> Option<Instant> {
        self.renewed.map(|t| t + self.ttl() / 2)
    }

    fn body(&self, on: bool, node_href: &str) -> Value {
        let o = &self.options;
        let mut body = Map::new();
        body.insert("$schema".into(), json!(schema_uri("service")));
        body.insert("serviceType".into(), json!(o.service_type));
        body.insert("status".into(), json!(if on { "ON" } else { "OFF" }));
        let fields = [
            ("name", &o.service_name),
            ("description", &o.service_description),
            ("accessPoint", &o.service_accesspoint),
        ];
        for (key, value) in fields {
            if let Some(v) = value {
                body.insert(key.into(), json!(v));
            }
        }
        let running_on = o.service_runningon.as_deref().unwrap_or(node_href);
        body.insert("runningOn".into(), record::link(running_on));
        body.insert("ttl".into(), json!(self.ttl().as_secs()));
        Value::Object(body)
    }

    /// Whether a write is due at `now` for the node `node_href`.
    fn due(&self, now: Instant, node_href: &str) -> Option<Value> {
        let on = self.on?;
        let body = self.body(on, node_href);
        let renew = self.renew_at().is_none_or(|t| t <= now);
        (renew || self.written.as_ref() != Some(&body)).then_some(body)
    }
}

/// Every watched service's record, by probe name.
#[derive(Default)]
pub struct Watched {
    records: HashMap<String, Record>,
}

impl Watched {
    /// Follows the configuration's `registration_probe`s: new ones are
    /// added, removed ones forgotten (their records stay in UNIS until
    /// their TTL ends), changed ones are written at the next sync.
    /// Returns whether a sync is due.
    pub fn configure(&mut self, config: &Config) -> bool {
        let mut wanted = HashMap::new();
        for p in &config.probes {
            if p.module != registration::SPEC.module {
                continue;
            }
            match p.options::<Options>() {
                Ok(o) => {
                    wanted.insert(p.name.clone(), o);
                }
                Err(e) => tracing::debug!(probe = %p.name, error = %e, "no service record"),
            }
        }
        self.records.retain(|name, _| wanted.contains_key(name));
        let mut changed = false;
        for (name, options) in wanted {
            match self.records.get_mut(&name) {
                Some(r) if r.options == options => {}
                Some(r) => {
                    // Found again under the new access point and type.
                    if r.options.service_accesspoint != options.service_accesspoint
                        || r.options.service_type != options.service_type
                    {
                        r.id = None;
                    }
                    r.options = options;
                    changed = true;
                }
                None => {
                    self.records.insert(
                        name,
                        Record {
                            options,
                            on: None,
                            id: None,
                            written: None,
                            renewed: None,
                        },
                    );
                }
            }
        }
        changed
    }

    /// Notes the latest status in a batch of `probe`'s samples; returns
    /// whether it changed, so that the record is written soon.
    pub fn observe(&mut self, probe: &str, samples: &[Sample]) -> bool {
        let Some(r) = self.records.get_mut(probe) else {
            return false;
        };
        let Some(on) = registration::latest_status(samples) else {
            return false;
        };
        let changed = r.on != Some(on);
        r.on = Some(on);
        changed
    }

    /// When the next TTL renewal is due.
    pub fn renew_at(&self) -> Option<Instant> {
        self.records.values().filter_map(Record::renew_at).min()
    }

    /// Writes every record that is due: found (or created) first, then
    /// its status. `node_href` is blipp's node, the default `runningOn`.
    pub async fn sync(&mut self, unis: &Endpoint, node_href: &str) -> Result<(), UnisError> {
        let now = Instant::now();
        for (probe, r) in &mut self.records {
            let Some(body) = r.due(now, node_href) else {
                continue;
            };
            let id = match &r.id {
                Some(id) => Some(id.clone()),
                None => find(unis, &r.options, node_href).await?,
            };
            let id = match id {
                Some(id) => {
                    let mut put = body.clone();
                    put["id"] = json!(id);
                    unis.put(&format!("/services/{id}"), &put, "service")
                        .await?;
                    id
                }
                None => {
                    let stored = unis.post("/services", &body, "service").await?;
                    let id = stored
                        .first()
                        .and_then(|s| s.get("id"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| UnisError::Unexpected {
                            method: "POST",
                            url: format!("{}/services", unis.base()),
                            what: "the stored service has no id".into(),
                        })?
                        .to_owned();
                    tracing::info!(%probe, service = %id, "watched service registered in UNIS");
                    id
                }
            };
            if r.written.as_ref().and_then(|w| w.get("status")) != body.get("status") {
                tracing::info!(%probe, service = %id, status = %body["status"], "watched service's status written to UNIS");
            }
            r.id = Some(id);
            r.written = Some(body);
            r.renewed = Some(now);
        }
        Ok(())
    }
}

/// The id of the watched service's record in UNIS, if there is one.
async fn find(
    unis: &Endpoint,
    options: &Options,
    node_href: &str,
) -> Result<Option<String>, UnisError> {
    let running_on = options.service_runningon.as_deref().unwrap_or(node_href);
    let query: Vec<(&str, &str)> = match &options.service_accesspoint {
        Some(ap) => vec![("accessPoint", ap), ("serviceType", &options.service_type)],
        None => vec![
            ("serviceType", &options.service_type),
            ("runningOn.href", running_on),
        ],
    };
    let mut query = query;
    query.push(("unique", "true"));
    let found = unis.get_list("/services", &query).await?;
    Ok(found
        .first()
        .and_then(|s| s.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ttl: Option<u64>) -> Record {
        Record {
            options: Options {
                service_type: "http://svc.example.net/t".into(),
                service_name: Some("t".into()),
                service_description: None,
                service_accesspoint: Some("tcp://127.0.0.1:9".into()),
                service_runningon: None,
                service_ttl: ttl,
                pidfile: Some("/run/t.pid".into()),
                process_name: None,
            },
            on: None,
            id: None,
            written: None,
            renewed: None,
        }
    }

    /// Nothing to write before the first status; then a write per change
    /// of status and per half TTL, none in between.
    #[test]
    fn written_on_changes_and_half_way_through_the_ttl() {
        let node = "http://unis.example/nodes/n";
        let t0 = Instant::now();
        let mut r = record(Some(60));
        assert!(r.due(t0, node).is_none(), "no status yet");
        r.on = Some(true);
        let body = r.due(t0, node).expect("first write");
        assert_eq!(body["status"], "ON");
        assert_eq!(body["runningOn"]["href"], node);
        assert_eq!(body["accessPoint"], "tcp://127.0.0.1:9");
        assert_eq!(body["ttl"], 60);
        assert!(body.get("description").is_none());
        r.written = Some(body);
        r.renewed = Some(t0);
        assert!(r.due(t0 + Duration::from_secs(29), node).is_none());
        assert!(
            r.due(t0 + Duration::from_secs(30), node).is_some(),
            "renewal"
        );
        r.on = Some(false);
        let off = r
            .due(t0 + Duration::from_secs(1), node)
            .expect("status changed");
        assert_eq!(off["status"], "OFF");
        r.on = Some(true);
        r.options.service_runningon = Some("http://unis.example/nodes/other".into());
        let moved = r
            .due(t0 + Duration::from_secs(1), node)
            .expect("field changed");
        assert_eq!(
            moved["runningOn"]["href"],
            "http://unis.example/nodes/other"
        );
        assert_eq!(record(None).ttl(), Duration::from_secs(TTL_DEFAULT));
    }
}
