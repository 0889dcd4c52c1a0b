//! What blippd last wrote into its service record in UNIS, and what the
//! local configuration said then, remembered on disk, so that a value it
//! wrote itself is not later mistaken for an operator's change in UNIS.
//!
//! blippd writes the configuration in effect back into the service record.
//! Without a memory of that write, an edit of the local file made after it
//! (`unis_poll_interval` 300 -> 5) would be overridden at the next start
//! by the stale 300 that UNIS holds only because blippd put it there. So
//! the service from UNIS is merged per key, against the last write (W) and
//! the local configuration of that moment (Lw):
//!
//! - UNIS still holds W there and the local value changed since Lw: the
//!   file was edited, UNIS was not; the local value wins;
//! - UNIS holds something else than W: someone changed it in UNIS; UNIS
//!   wins (the original's rule), and when the local value changed too, the
//!   conflict is logged;
//! - otherwise nothing changed on either side and UNIS's value (which may
//!   have come from UNIS long ago) stays.
//!
//! Without a memory (the first start, a lost state directory, another
//! service) UNIS wins everywhere, as before.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The parts of the service record the merge looks at.
const COMPARED: [&str; 2] = ["status", "properties"];

/// Kept with them: which service the memory is of.
const ID: &str = "id";

/// The memory of the last write, and where it is kept.
#[derive(Debug, Default)]
pub(super) struct Written {
    path: Option<PathBuf>,
    /// `{"written": W, "local": Lw}`.
    last: Option<Value>,
}

impl Written {
    /// The memory kept in `path`, read when it is there.
    pub(super) fn load(path: PathBuf) -> Self {
        let last = std::fs::read(&path)
            .ok()
            .filter(|b| b.len() <= MAX_BYTES)
            .and_then(|b| serde_json::from_slice(&b).ok());
        Self {
            path: Some(path),
            last,
        }
    }

    /// Remembers `body`, the service record just written, and `local`, the
    /// local configuration it came from (a body without `properties`,
    /// which only keeps the service alive, changes nothing).
    pub(super) fn record(&mut self, body: &Value, local: &Value) {
        if body.get("properties").is_none() {
            return;
        }
        let kept = serde_json::json!({"written": compared(body), "local": compared(local)});
        if self.last.as_ref() == Some(&kept) {
            return;
        }
        if let Some(path) = &self.path
            && let Err(e) = save(path, &kept)
        {
            tracing::debug!(path = %path.display(), error = %e, "cannot remember the service written to UNIS; after a restart UNIS wins over the file");
        }
        self.last = Some(kept);
    }

    /// `service` (from UNIS) without the values where only the local
    /// configuration `local` changed since the last write: what is to be
    /// merged over the local configuration. Also the JSON pointers where
    /// both changed (conflicts, UNIS winning). The memory counts only for
    /// the service it was written to.
    pub(super) fn changes(&self, service: &Value, local: &Value) -> (Value, Vec<String>) {
        let Some(last) = self.last.as_ref().filter(|l| {
            l.pointer("/written/id").is_some() && l.pointer("/written/id") == service.get(ID)
        }) else {
            return (service.clone(), Vec::new());
        };
        let mut out = service.clone();
        let mut conflicts = Vec::new();
        if let Value::Object(top) = &mut out {
            for key in COMPARED {
                let Some(theirs) = top.remove(key) else {
                    continue;
                };
                let sides = Sides {
                    written: last.get("written").and_then(|w| w.get(key)),
                    local: local.get(key),
                    local_then: last.get("local").and_then(|l| l.get(key)),
                };
                if let Some(kept) = merge_key(&theirs, sides, &format!("/{key}"), &mut conflicts) {
                    top.insert(key.to_owned(), kept);
                }
            }
        }
        (out, conflicts)
    }
}

/// A memory larger than this is not read (a configuration is far smaller).
const MAX_BYTES: usize = 16 << 20;

fn compared(doc: &Value) -> Value {
    let mut kept = Map::new();
    for key in COMPARED.into_iter().chain([ID]) {
        if let Some(v) = doc.get(key) {
            kept.insert(key.to_owned(), v.clone());
        }
    }
    Value::Object(kept)
}

/// Written beside and renamed over, so that a crash leaves the old memory
/// or the new one.
fn save(path: &Path, value: &Value) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, value.to_string())?;
    std::fs::rename(&tmp, path)
}

/// The other values of one key: in the last write, in the local
/// configuration now, and in the local configuration then.
#[derive(Clone, Copy)]
struct Sides<'a> {
    written: Option<&'a Value>,
    local: Option<&'a Value>,
    local_then: Option<&'a Value>,
}

impl<'a> Sides<'a> {
    fn child(self, key: &str) -> Sides<'a> {
        Sides {
            written: self.written.and_then(|v| v.get(key)),
            local: self.local.and_then(|v| v.get(key)),
            local_then: self.local_then.and_then(|v| v.get(key)),
        }
    }
}

/// UNIS's value `theirs` of one key, or `None` where the local value is
/// to win; objects are merged key by key.
fn merge_key(
    theirs: &Value,
    sides: Sides<'_>,
    pointer: &str,
    conflicts: &mut Vec<String>,
) -> Option<Value> {
    if let Value::Object(t) = theirs {
        let kept: Map<String, Value> = t
            .iter()
            .filter_map(|(k, v)| {
                let p = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                merge_key(v, sides.child(k), &p, conflicts).map(|c| (k.clone(), c))
            })
            .collect();
        // An object all of whose keys the local side now decides adds
        // nothing.
        return (kept.len() == t.len() || !kept.is_empty()).then_some(Value::Object(kept));
    }
    let local_changed = sides.local != sides.local_then;
    if Some(theirs) == sides.written {
        // UNIS still holds what blippd wrote.
        return (!local_changed).then(|| theirs.clone());
    }
    if local_changed && sides.local != Some(theirs) {
        conflicts.push(pointer.to_owned());
    }
    Some(theirs.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(v: Value) -> Value {
        json!({"id": "s1", "status": "ON", "properties": {"configurations": v}})
    }

    #[test]
    fn what_blippd_wrote_itself_is_no_change_in_unis() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("written.json");
        let mut w = Written::load(path.clone());
        let local_then = conf(json!({"unis_poll_interval": 300, "unis_max_backoff": 60}));
        // UNIS had added a probe, which blippd wrote back with the rest.
        w.record(
            &conf(json!({"unis_poll_interval": 300, "unis_max_backoff": 60,
                "probes": {"mem": {"probe_module": "mem"}}})),
            &local_then,
        );
        // A restart reads the memory back.
        let w = Written::load(path);
        let local = conf(json!({"unis_poll_interval": 5, "unis_max_backoff": 90}));
        // UNIS still holds what blippd wrote, but someone changed the
        // backoff there, and added a probe.
        let unis = conf(json!({"unis_poll_interval": 300, "unis_max_backoff": 120,
            "probes": {"mem": {"probe_module": "mem"}, "cpu": {"probe_module": "cpu"}}}));
        let (changes, conflicts) = w.changes(&unis, &local);
        assert_eq!(
            changes,
            json!({"id": "s1", "status": "ON", "properties": {"configurations": {"unis_max_backoff": 120,
                "probes": {"mem": {"probe_module": "mem"}, "cpu": {"probe_module": "cpu"}}}}}),
            "the file's edit of the poll interval wins; what came from UNIS stays"
        );
        assert_eq!(
            conflicts,
            ["/properties/configurations/unis_max_backoff"],
            "the file changed 60 -> 90 and UNIS 60 -> 120"
        );
    }

    #[test]
    fn without_a_memory_unis_wins_everywhere() {
        let w = Written::default();
        let unis = conf(json!({"unis_poll_interval": 300}));
        assert_eq!(w.changes(&unis, &conf(json!({}))), (unis, Vec::new()));
    }

    #[test]
    fn a_keep_alive_body_is_not_remembered() {
        let mut w = Written::default();
        w.record(&json!({"id": "s1", "runningOn": {"href": "x"}}), &json!({}));
        assert!(w.last.is_none());
    }
}
