//! Measurements and metadata: one measurement per probe, found by probe
//! name and written in one list `POST`; the metadata of every series
//! (probe, subject, event type), read for all measurements in one filtered
//! `GET` and created in one list `POST` per delivery that brings new
//! series; and the mapping of local subjects to UNIS resources.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use super::{MeasurementRef, Series, SeriesKey, Session, chunks_of, str_at};
use crate::sample::Name;
use crate::trust;
use crate::unis::UnisError;
use crate::unis::record::{self, measurement_differs};

impl Session {
    /// One measurement per probe: found by probe name, created or updated
    /// in one list `POST`; then the metadata of every reused measurement in
    /// one filtered `GET`. Returns (reused, written).
    pub(super) async fn sync_measurements(
        &mut self,
        service_created: bool,
        listed: Option<Vec<Value>>,
    ) -> Result<(usize, usize), UnisError> {
        let service_href = self.service_href();
        let existing = match listed {
            Some(listed) => listed,
            None if service_created => Vec::new(),
            None => self.list_measurements().await?,
        };
        self.others_seen = super::edits::others(&existing);
        let names: HashSet<String> = self.config.probes.iter().map(|p| p.name.clone()).collect();
        let mut ours: HashMap<String, &Value> = HashMap::new();
        let mut others = Vec::new();
        for m in &existing {
            match record::measurement_probe(m) {
                Some(name) if names.contains(name) => {
                    // Newest first: the first of a name is the current one.
                    ours.entry(name.to_owned()).or_insert(m);
                }
                // blipp's, of a probe no longer configured: left alone.
                Some(_) if m.pointer("/properties/blipp/probe").is_some() => {}
                _ => others.push(m),
            }
        }
        let mut measurements = HashMap::new();
        let mut measurement_refusals = Vec::new();
        let mut follow = false;
        if self.options.use_existing {
            for m in others {
                let Some(id) = m.get("id").and_then(Value::as_str) else {
                    continue;
                };
                let name = record::measurement_probe(m)
                    .map_or_else(|| format!("measurement-{id}"), str::to_owned);
                if m.get("configuration").is_none() {
                    continue;
                }
                if record::runs_on_record_slots(m) {
                    follow = true;
                }
                let Some(configuration) = record::runnable_configuration(m) else {
                    if self.waiting.insert(id.to_owned()) {
                        tracing::info!(
                            measurement = id,
                            "a builtins.scheduled measurement made by others waits for its scheduled_times"
                        );
                    }
                    continue;
                };
                self.waiting.remove(id);
                let configuration = &configuration;
                if names.contains(&name) || measurements.contains_key(&name) {
                    continue;
                }
                let origin = format!("UNIS measurement {id}");
                let refused = trust::screen_measurement(
                    &self.local,
                    &self.config.service,
                    &name,
                    configuration,
                    &origin,
                );
                if !refused.is_empty() {
                    // Nothing of it runs: a part refused could be what
                    // the rest relies on.
                    measurement_refusals.extend(refused);
                    continue;
                }
                match self.config.adopt(&name, configuration, &origin) {
                    Ok(()) => {
                        tracing::info!(probe = %name, measurement = id, "running a measurement made by others (-e use)");
                        measurements.insert(
                            name,
                            MeasurementRef {
                                id: id.to_owned(),
                                href: str_at(m, "/selfRef").unwrap_or_default().to_owned(),
                                event_types: record::event_types(m),
                                ours: false,
                                record: m.clone(),
                            },
                        );
                    }
                    Err(e) => {
                        tracing::warn!(measurement = id, error = %e, "cannot run this measurement")
                    }
                }
            }
        }
        let mut writes = Vec::new();
        let mut reused = Vec::new();
        for probe in &self.config.probes {
            if measurements.contains_key(&probe.name) {
                continue;
            }
            let old = ours.get(&probe.name).copied();
            let id = old
                .and_then(|m| m.get("id").and_then(Value::as_str))
                .map_or_else(record::new_id, str::to_owned);
            let mut types = old.map(record::event_types).unwrap_or_default();
            if let Some(known) = self.measurements.get(&probe.name) {
                types.extend(known.event_types.iter().cloned());
            }
            if let (Some(old), Some(known)) = (old, self.held.get(&probe.name)) {
                // Its edit in UNIS was refused: left as the operator wrote
                // it, compared with what blippd knew at the next poll.
                reused.push(str_at(old, "/selfRef").unwrap_or_default().to_owned());
                measurements.insert(
                    probe.name.clone(),
                    MeasurementRef {
                        id,
                        href: str_at(old, "/selfRef").unwrap_or_default().to_owned(),
                        event_types: types,
                        ours: true,
                        record: known.clone(),
                    },
                );
                continue;
            }
            let desired = record::measurement(old, &id, &service_href, probe, &types);
            let href = old.and_then(|m| str_at(m, "/selfRef")).map_or_else(
                || format!("{}/measurements/{id}", self.unis.base()),
                str::to_owned,
            );
            if let Some(old) = old {
                reused.push(href.clone());
                if !measurement_differs(old, &desired) {
                    measurements.insert(
                        probe.name.clone(),
                        MeasurementRef {
                            id,
                            href,
                            event_types: types,
                            ours: true,
                            record: old.clone(),
                        },
                    );
                    continue;
                }
            }
            writes.push(desired.clone());
            measurements.insert(
                probe.name.clone(),
                MeasurementRef {
                    id,
                    href,
                    event_types: types,
                    ours: true,
                    record: desired,
                },
            );
        }
        let written = writes.len();
        if !writes.is_empty() {
            self.store_measurements(&mut measurements, writes).await?;
        }
        self.measurements = measurements;
        self.measurement_refusals = measurement_refusals;
        self.follow_measurements = follow;
        self.log_refusals();
        self.config.refused = self.refusals();
        // Adopted measurements changed the configuration.
        if self.config.probes.len() != names.len() {
            self.generation += 1;
        }
        let adopted: Vec<String> = self
            .measurements
            .values()
            .filter(|m| !m.ours)
            .map(|m| m.href.clone())
            .collect();
        reused.extend(adopted);
        self.load_series(&reused).await?;
        Ok((reused.len(), written))
    }

    /// `POST /measurements` of a list; the stored records replace the
    /// local ones by id.
    async fn store_measurements(
        &self,
        measurements: &mut HashMap<String, MeasurementRef>,
        writes: Vec<Value>,
    ) -> Result<(), UnisError> {
        let stored = self
            .unis
            .post("/measurements", &Value::Array(writes), "measurement")
            .await?;
        for s in stored {
            let Some(id) = s.get("id").and_then(Value::as_str) else {
                continue;
            };
            if let Some(m) = measurements.values_mut().find(|m| m.id == id) {
                if let Some(href) = str_at(&s, "/selfRef") {
                    m.href = href.to_owned();
                }
                m.event_types = record::event_types(&s);
                m.record = s;
            }
        }
        Ok(())
    }

    /// The local subject a stored metadata describes: its
    /// `parameters.subject`, else (metadata of the original BLiPP) `node`
    /// or `port:<name>` from its subject href.
    fn local_subject(&self, md: &Value) -> Option<String> {
        if let Some(s) = str_at(md, "/parameters/subject") {
            return Some(s.to_owned());
        }
        let href = str_at(md, "/subject/href")?;
        if Some(href) == self.node_href() {
            return Some("node".into());
        }
        self.ports
            .iter()
            .find(|(_, h)| h.as_str() == href)
            .map(|(name, _)| format!("port:{name}"))
    }

    /// Reads the metadata of the given measurements (one `GET` per few
    /// dozen measurements) into the series table.
    async fn load_series(&mut self, measurement_hrefs: &[String]) -> Result<(), UnisError> {
        let by_href: HashMap<&str, &str> = self
            .measurements
            .iter()
            .map(|(name, m)| (m.href.as_str(), name.as_str()))
            .collect();
        let mut found = Vec::new();
        for hrefs in chunks_of(measurement_hrefs) {
            found.extend(
                self.unis
                    .get_list(
                        "/metadata",
                        &[("parameters.measurement.href", &hrefs), ("unique", "true")],
                    )
                    .await?,
            );
        }
        let mut series = HashMap::new();
        for md in &found {
            let (Some(mid), Some(href), Some(subject_href), Some(et), Some(m)) = (
                str_at(md, "/id"),
                str_at(md, "/selfRef"),
                str_at(md, "/subject/href"),
                str_at(md, "/eventType"),
                str_at(md, "/parameters/measurement/href"),
            ) else {
                continue;
            };
            let (Some(probe), Some(subject)) = (by_href.get(m), self.local_subject(md)) else {
                continue;
            };
            let key: SeriesKey = (Name::from(*probe), Name::from(subject), Name::from(et));
            // Created by this blippd and found again: still fresh.
            let fresh = self
                .series
                .get(&key)
                .is_some_and(|s| s.fresh && s.mid == mid);
            series.entry(key).or_insert_with(|| Series {
                mid: mid.to_owned(),
                href: href.to_owned(),
                subject_href: subject_href.to_owned(),
                fresh,
            });
        }
        self.series = series;
        Ok(())
    }

    /// The UNIS resource a local subject is about: the node, a port, or
    /// (for what UNIS has no resource for: disks, CPUs, processes, NUMA
    /// nodes) the node, the thing itself named in the metadata.
    fn subject_href(&self, subject: &str) -> Option<String> {
        let node = self.node_href()?.to_owned();
        match subject.strip_prefix("port:") {
            Some(name) if !self.portless.contains(name) => self.ports.get(name).cloned(),
            _ => Some(node),
        }
    }

    /// Makes sure every series in `keys` has metadata: creates the missing
    /// ones in one list `POST`, after adding new event types to the
    /// measurements (one more) and registering ports of interfaces that
    /// appeared since the start. Series of probes without a measurement
    /// are left out (the caller drops their samples).
    pub async fn resolve(&mut self, keys: &HashSet<SeriesKey>) -> Result<(), UnisError> {
        let unknown_ports: Vec<String> = keys
            .iter()
            .filter_map(|(_, s, _)| s.strip_prefix("port:"))
            .filter(|n| !self.ports.contains_key(*n) && !self.portless.contains(*n))
            .map(str::to_owned)
            .collect();
        if !unknown_ports.is_empty() {
            let host = self.host(true).await.clone();
            self.sync_ports(&host).await?;
            self.sync_node(&host).await?;
            for name in unknown_ports {
                if !self.ports.contains_key(&name) {
                    tracing::info!(interface = %name, "interface gone before its port was registered: its samples are about the node");
                    self.portless.insert(name);
                }
            }
        }
        let mut creates = Vec::new();
        let mut new_types: HashMap<String, BTreeSet<String>> = HashMap::new();
        for key in keys {
            let (probe, subject, et) = key;
            let Some(m) = self.measurements.get(probe.as_ref()) else {
                continue;
            };
            let Some(subject_href) = self.subject_href(subject) else {
                continue;
            };
            if self
                .series
                .get(key)
                .is_some_and(|s| s.subject_href == subject_href)
            {
                continue;
            }
            let id = record::new_id();
            creates.push((
                key.clone(),
                record::metadata(&id, &subject_href, et, &m.href, subject),
            ));
            if m.ours && !m.event_types.contains(et.as_ref()) {
                new_types
                    .entry(probe.to_string())
                    .or_default()
                    .insert(et.to_string());
            }
        }
        if !new_types.is_empty() {
            let service_href = self.service_href();
            let mut writes = Vec::new();
            for (probe, types) in &new_types {
                let (Some(m), Some(cfg)) = (
                    self.measurements.get(probe),
                    self.config.probes.iter().find(|p| &p.name == probe),
                ) else {
                    continue;
                };
                let mut all = m.event_types.clone();
                all.extend(types.iter().cloned());
                writes.push(record::measurement(
                    Some(&m.record),
                    &m.id,
                    &service_href,
                    cfg,
                    &all,
                ));
            }
            let mut measurements = std::mem::take(&mut self.measurements);
            let stored = self.store_measurements(&mut measurements, writes).await;
            self.measurements = measurements;
            stored?;
        }
        if creates.is_empty() {
            return Ok(());
        }
        let bodies: Vec<Value> = creates.iter().map(|(_, md)| md.clone()).collect();
        let stored = self
            .unis
            .post("/metadata", &Value::Array(bodies), "metadata")
            .await?;
        let hrefs: HashMap<&str, &str> = stored
            .iter()
            .filter_map(|s| Some((str_at(s, "/id")?, str_at(s, "/selfRef")?)))
            .collect();
        for (key, md) in creates {
            let mid = str_at(&md, "/id").unwrap_or_default();
            let Some(href) = hrefs.get(mid) else { continue };
            self.series.insert(
                key,
                Series {
                    mid: mid.to_owned(),
                    href: (*href).to_owned(),
                    subject_href: str_at(&md, "/subject/href").unwrap_or_default().to_owned(),
                    fresh: true,
                },
            );
        }
        Ok(())
    }
}
