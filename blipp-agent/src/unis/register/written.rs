//! What blippd last wrote into its service record in UNIS, remembered on
//! disk, so that a value it wrote itself is not later mistaken for an
//! operator's change in UNIS.
//!
//! blippd writes the configuration in effect back into the service record.
//! Without a memory of that write, an edit of the local file made after it
//! (`unis_poll_interval` 300 -> 5) would be overridden at the next start
//! by the stale 300 that UNIS holds only because blippd put it there. So
//! the service from UNIS is merged as a three-way merge, per key: a value
//! that still equals what blippd last wrote is no change in UNIS and leaves
//! the local value in force; a value that differs from it was changed in
//! UNIS and wins (the original's rule, UNIS over the file); where both the
//! file and UNIS changed a key since that write, UNIS wins and the conflict
//! is logged. Without a memory (the first start, a lost state directory)
//! UNIS wins everywhere, as before.

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

    /// Remembers `body`, the service record just written (a body without
    /// `properties`, which only keeps the service alive, changes nothing).
    pub(super) fn record(&mut self, body: &Value) {
        if body.get("properties").is_none() {
            return;
        }
        let kept = compared(body);
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

    /// `service` (from UNIS) without what still equals the last write: what
    /// someone else changed in UNIS since. Also the JSON pointers where
    /// `local` changed since that write too (conflicts). The memory counts
    /// only for the service it was written to.
    pub(super) fn changes(&self, service: &Value, local: &Value) -> (Value, Vec<String>) {
        let Some(last) = self
            .last
            .as_ref()
            .filter(|l| l.get("id").is_some() && l.get("id") == service.get("id"))
        else {
            return (service.clone(), Vec::new());
        };
        let mut out = service.clone();
        let mut conflicts = Vec::new();
        if let Value::Object(top) = &mut out {
            for key in COMPARED {
                let Some(theirs) = top.remove(key) else {
                    continue;
                };
                let pointer = format!("/{key}");
                if let Some(changed) = changed_since(&theirs, last.get(key)) {
                    collect_conflicts(
                        &changed,
                        last.get(key),
                        local.get(key),
                        &pointer,
                        &mut conflicts,
                    );
                    top.insert(key.to_owned(), changed);
                }
            }
        }
        (out, conflicts)
    }
}

/// A memory larger than this is not read (a configuration is far smaller).
const MAX_BYTES: usize = 8 << 20;

fn compared(body: &Value) -> Value {
    let mut kept = Map::new();
    for key in COMPARED.into_iter().chain([ID]) {
        if let Some(v) = body.get(key) {
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

/// `theirs` without the object members that equal `written`'s; `None` when
/// nothing differs. Arrays and scalars are compared whole.
fn changed_since(theirs: &Value, written: Option<&Value>) -> Option<Value> {
    match (theirs, written) {
        (t, Some(w)) if t == w => None,
        (Value::Object(t), Some(Value::Object(w))) => {
            let kept: Map<String, Value> = t
                .iter()
                .filter_map(|(k, v)| changed_since(v, w.get(k)).map(|c| (k.clone(), c)))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        (t, _) => Some(t.clone()),
    }
}

/// The pointers under `changed` whose local value also moved away from
/// `written` to something else than UNIS's.
fn collect_conflicts(
    changed: &Value,
    written: Option<&Value>,
    local: Option<&Value>,
    pointer: &str,
    out: &mut Vec<String>,
) {
    match changed {
        Value::Object(m) if written.is_some_and(Value::is_object) => {
            for (k, v) in m {
                let p = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                collect_conflicts(
                    v,
                    written.and_then(|w| w.get(k)),
                    local.and_then(|l| l.get(k)),
                    &p,
                    out,
                );
            }
        }
        theirs => {
            if let (Some(w), Some(l)) = (written, local)
                && l != w
                && l != theirs
            {
                out.push(pointer.to_owned());
            }
        }
    }
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
        w.record(&conf(
            json!({"unis_poll_interval": 300, "unis_max_backoff": 60,
            "probes": {"mem": {"probe_module": "mem"}}}),
        ));
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
            json!({"id": "s1", "properties": {"configurations": {"unis_max_backoff": 120,
                "probes": {"cpu": {"probe_module": "cpu"}}}}})
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
        w.record(&json!({"id": "s1", "runningOn": {"href": "x"}}));
        assert!(w.last.is_none());
    }
}
