//! blipp's own measurements in UNIS as a per-probe control surface, as the
//! original BLiPP read its measurements at every poll: an operator edits
//! one measurement's `configuration` (its schedule, `status: OFF`) to
//! change or stop that one probe.
//!
//! The keys of a measurement's configuration that changed since blippd
//! last wrote or read it are an edit of that probe. Each edit is screened
//! by the local trust policy on its own (refusals name the measurement and
//! the key under `/configuration`), then applied to the probe's entry in
//! the service record as read from UNIS, so that it goes through the one
//! merge every change from UNIS goes through (UNIS over the file per key,
//! `--override`, the memory of the last write) and is written back into
//! the service: service and measurement then agree, and the edit outlasts
//! a restart. A measurement whose edit was refused in part is left as the
//! operator wrote it (not overwritten), so that the refusal stays shown
//! until they fix it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Session;
use crate::config::policy::Refusal;
use crate::trust;
use crate::unis::UnisError;

/// Where the probes are in a service record.
const PROBES: &str = "/properties/configurations/probes";

/// One probe's measurement as changed in UNIS.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Edit {
    /// The probe.
    pub probe: String,
    /// The measurement's id.
    pub id: String,
    /// The measurement as UNIS holds it now.
    pub record: Value,
    /// Each changed key: its pointer under `configuration`, and its new
    /// value (`None`: removed).
    pub changes: Vec<(String, Option<Value>)>,
}

/// The keys of `after` that differ from `before`, as pointers under `at`,
/// leaves first: only what changed, so that an edit of one key does not
/// freeze the others (values from `probe_defaults` stay defaults).
pub(super) fn diff(
    before: &Value,
    after: &Value,
    at: &str,
    out: &mut Vec<(String, Option<Value>)>,
) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, av) in a {
                let p = format!("{at}/{}", escape(k));
                match b.get(k) {
                    Some(bv) => diff(bv, av, &p, out),
                    None => out.push((p, Some(av.clone()))),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push((format!("{at}/{}", escape(k)), None));
            }
        }
        _ if before != after => out.push((at.to_owned(), Some(after.clone()))),
        _ => {}
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Sets (or with `None` removes) the value at `pointer` of `doc`, making
/// missing objects on the way.
fn put(doc: &mut Value, pointer: &str, value: Option<Value>) {
    let keys: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut node = doc;
    for k in parents {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        node = node
            .as_object_mut()
            .expect("made an object")
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Value::Object(m) = node {
        match value {
            Some(v) => {
                m.insert(last.clone(), v);
            }
            None => {
                m.remove(last);
            }
        }
    } else if let Some(v) = value {
        let mut m = Map::new();
        m.insert(last.clone(), v);
        *node = Value::Object(m);
    }
}

/// A refusal of the merge, named after the measurement: its pointer under
/// `/configuration` instead of under the service's probe.
fn as_measurement(mut r: Refusal, probe_pointer: &str) -> Refusal {
    if let Some(rest) = r.pointer.strip_prefix(probe_pointer) {
        r.pointer = format!("/configuration{rest}");
    }
    r
}

impl Session {
    /// The service's measurements, newest first (one `GET`).
    pub(super) async fn list_measurements(&self) -> Result<Vec<Value>, UnisError> {
        self.unis
            .get_list(
                "/measurements",
                &[("service", &self.service_href()), ("unique", "true")],
            )
            .await
    }

    /// The edits of blipp's own measurements in `listed`: each whose
    /// configuration differs from the one blippd last wrote or read.
    pub(super) fn measurement_edits(&self, listed: &[Value]) -> Vec<Edit> {
        let mut edits = Vec::new();
        for (probe, known) in self.measurements.iter().filter(|(_, m)| m.ours) {
            let Some(now) = listed
                .iter()
                .find(|m| m.get("id").and_then(Value::as_str) == Some(known.id.as_str()))
            else {
                continue;
            };
            let (Some(before), Some(after)) =
                (known.record.get("configuration"), now.get("configuration"))
            else {
                continue;
            };
            let mut changes = Vec::new();
            diff(before, after, "", &mut changes);
            // The name is the record's, not the probe's to change.
            changes.retain(|(p, _)| p != "/name");
            if !changes.is_empty() {
                edits.push(Edit {
                    probe: probe.clone(),
                    id: known.id.clone(),
                    record: now.clone(),
                    changes,
                });
            }
        }
        edits.sort_by(|a, b| a.probe.cmp(&b.probe));
        edits
    }

    /// `service` (from UNIS) with each edit screened and applied to its
    /// probe's entry. Refusals are kept for `blippcmd status`; a
    /// measurement refused in part is held (not overwritten) with the
    /// record blippd knew.
    pub(super) fn with_measurement_edits(&mut self, service: &Value, edits: &[Edit]) -> Value {
        let mut out = service.clone();
        if edits.is_empty() {
            self.edit_refusals.clear();
            self.held.clear();
            return out;
        }
        if out.pointer(PROBES).is_none() {
            // The service runs the built-in set: an entry of one probe
            // must not replace the others.
            put(&mut out, PROBES, Some(self.probe_entries()));
        }
        let mut refusals = Vec::new();
        let mut held = Vec::new();
        for edit in edits {
            let probe_pointer = format!("{PROBES}/{}", escape(&edit.probe));
            let origin = format!("UNIS measurement {}", edit.id);
            let mut entry = self
                .doc
                .pointer(&probe_pointer)
                .cloned()
                .or_else(|| self.probe_entries().get(&edit.probe).cloned())
                .unwrap_or_else(|| Value::Object(Map::new()));
            for (p, v) in &edit.changes {
                put(&mut entry, p, v.clone());
            }
            let mut candidate = self.doc.clone();
            put(&mut candidate, &probe_pointer, Some(entry.clone()));
            let mut changes = Value::Object(Map::new());
            put(&mut changes, &probe_pointer, Some(entry));
            let screened = match trust::merge_service(
                &self.local,
                &candidate,
                &changes,
                &origin,
                self.options.precedence,
            ) {
                Ok((merged, refused)) => {
                    let refused: Vec<Refusal> = refused
                        .into_iter()
                        .map(|r| as_measurement(r, &probe_pointer))
                        .collect();
                    if !refused.is_empty() {
                        refusals.extend(refused);
                        held.push(edit.probe.clone());
                    }
                    merged.pointer(&probe_pointer).cloned()
                }
                Err(e) => {
                    let configuration = edit.record.get("configuration").unwrap_or(&Value::Null);
                    refusals.push(Refusal::new(
                        &origin,
                        "/configuration",
                        configuration,
                        format!("not a valid probe configuration: {e}"),
                    ));
                    held.push(edit.probe.clone());
                    None
                }
            };
            let Some(screened) = screened else { continue };
            // Only the changed keys, as screened: the rest of the probe's
            // entry in UNIS stays as it is.
            for (p, _) in &edit.changes {
                put(
                    &mut out,
                    &format!("{probe_pointer}{p}"),
                    screened.pointer(p).cloned(),
                );
            }
        }
        self.edit_refusals = refusals;
        self.held = held
            .into_iter()
            .filter_map(|p| {
                let record = self.measurements.get(&p)?.record.clone();
                Some((p, record))
            })
            .collect();
        out
    }

    /// Every probe's entry as configured (the built-in set when the
    /// configuration names none), by name.
    fn probe_entries(&self) -> Value {
        if let Some(p) = self.doc.pointer(PROBES) {
            return p.clone();
        }
        let mut all = Map::new();
        for p in &self.config.probes {
            let mut raw = p.raw.clone();
            if let Value::Object(m) = &mut raw {
                m.remove("name");
            }
            all.insert(p.name.clone(), raw);
        }
        Value::Object(all)
    }

    /// Whether the measurements of others in `listed` differ from those
    /// seen at the last sync (`-e use`: new ones, changed ones, gone ones).
    pub(super) fn others_changed(&self, listed: &[Value]) -> bool {
        others(listed) != self.others_seen
    }
}

/// The measurements of others in `listed` (not made by blipp), by id,
/// with their configuration.
pub(super) fn others(listed: &[Value]) -> BTreeMap<String, Value> {
    listed
        .iter()
        .filter(|m| m.pointer("/properties/blipp/probe").is_none())
        .filter_map(|m| {
            let id = m.get("id").and_then(Value::as_str)?;
            Some((
                id.to_owned(),
                m.get("configuration").cloned().unwrap_or(Value::Null),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn changes(before: &Value, after: &Value) -> Vec<(String, Option<Value>)> {
        let mut out = Vec::new();
        diff(before, after, "", &mut out);
        out
    }

    #[test]
    fn only_changed_leaves() {
        let before = json!({"name": "mem", "probe_module": "mem",
            "schedule_params": {"every": 1, "start_time": 0}, "status": "ON"});
        let after = json!({"name": "mem", "probe_module": "mem",
            "schedule_params": {"every": 5, "start_time": 0}, "status": "OFF"});
        assert_eq!(
            changes(&before, &after),
            vec![
                ("/schedule_params/every".into(), Some(json!(5))),
                ("/status".into(), Some(json!("OFF")))
            ]
        );
        assert!(changes(&before, &before).is_empty());
    }

    #[test]
    fn added_removed_and_replaced_keys() {
        let before = json!({"a": 1, "b": {"c": 2}, "d/e": 3});
        let after = json!({"b": 7, "x": {"y": 1}, "d/e": 4});
        assert_eq!(
            changes(&before, &after),
            vec![
                ("/b".into(), Some(json!(7))),
                ("/d~1e".into(), Some(json!(4))),
                ("/x".into(), Some(json!({"y": 1}))),
                ("/a".into(), None),
            ]
        );
    }

    #[test]
    fn put_makes_and_removes() {
        let mut doc = json!({"p": {"q": 1}});
        put(&mut doc, "/p/r/s", Some(json!(2)));
        put(&mut doc, "/p/q", None);
        put(&mut doc, "/d~1e", Some(json!(3)));
        assert_eq!(doc, json!({"p": {"r": {"s": 2}}, "d/e": 3}));
    }

    #[test]
    fn refusals_name_the_measurement_key() {
        let r = Refusal::new(
            "UNIS measurement m1",
            "/properties/configurations/probes/mem/command",
            &json!("/bin/sh"),
            "not allowed",
        );
        let r = as_measurement(r, "/properties/configurations/probes/mem");
        assert_eq!(r.pointer, "/configuration/command");
        let whole = Refusal::new("o", "/properties/configurations/probes/mem", &json!(1), "x");
        assert_eq!(
            as_measurement(whole, "/properties/configurations/probes/mem").pointer,
            "/configuration"
        );
    }

    #[test]
    fn others_are_the_records_blipp_did_not_make() {
        let listed = vec![
            json!({"id": "a", "properties": {"blipp": {"probe": "mem"}}, "configuration": {}}),
            json!({"id": "b", "configuration": {"probe_module": "cpu"}}),
        ];
        let found = others(&listed);
        assert_eq!(found.len(), 1);
        assert_eq!(found["b"], json!({"probe_module": "cpu"}));
    }
}
