//! Run-time edits of the running configuration (`blippcmd set`, `del`,
//! `probe stop|start` through the control socket): a JSON pointer into the
//! service object and its new value, or its removal.
//!
//! Edits form the top layer of the configuration — built-in defaults <
//! file < command line < UNIS < edits — and are kept as an ordered list so
//! that they can be applied again over a new base (a configuration that
//! UNIS changed). They last until `reload` or a restart of blippd.
//!
//! Only what the running agent can follow may be edited: the service's
//! `status`, `probe_defaults` and the probes. Service-wide settings (UNIS
//! URL, TLS, spool) are read once at start-up, so an edit of them would
//! be a lie; it is refused with that reason.

use serde_json::{Map, Value};

use super::ConfigError;

/// Where edits come from, in error messages.
pub const ORIGIN: &str = "control socket";

/// The parts of the service object an edit may change.
const EDITABLE: [&str; 3] = [
    "/status",
    "/properties/configurations/probe_defaults",
    "/properties/configurations/probes",
];

/// At most this many edits are kept; `reload` starts over.
pub const MAX_EDITS: usize = 256;

/// One change: set `pointer` to `value`, or remove it (`None`).
#[derive(Clone, Debug, PartialEq)]
pub struct Edit {
    /// A JSON pointer (RFC 6901) into the service object.
    pub pointer: String,
    /// The new value; `None` removes the key.
    pub value: Option<Value>,
}

/// The pointer of probe `probe`'s `key`, where `key` may name a nested key
/// with dots (`schedule_params.every`), as `blippcmd set PROBE KEY VALUE`
/// writes it.
pub fn probe_pointer(probe: &str, key: &str) -> String {
    let mut p = format!("/properties/configurations/probes/{}", escape(probe));
    for part in key.split('.') {
        p.push('/');
        p.push_str(&escape(part));
    }
    p
}

/// A value as an operator types it on a command line: JSON when it parses
/// as JSON (`5`, `true`, `["eth0"]`, `"x"`), else the text itself as a
/// string (`OFF`, `builtins.simple`).
pub fn value_from_arg(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// RFC 6901 escaping of one key.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The keys of `pointer`, unescaped; an error when it is no pointer.
fn tokens(pointer: &str) -> Result<Vec<String>, ConfigError> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(ConfigError::invalid(
            ORIGIN,
            pointer,
            &Value::String(pointer.to_owned()),
            "expected a JSON pointer starting with / (e.g. /properties/configurations/probes/cpu/status)",
        ));
    };
    rest.split('/')
        .map(|t| {
            let bad_escape = t
                .char_indices()
                .any(|(i, c)| c == '~' && !matches!(t[i + 1..].chars().next(), Some('0' | '1')));
            if bad_escape {
                Err(ConfigError::invalid(
                    ORIGIN,
                    pointer,
                    &Value::String(t.to_owned()),
                    "expected ~ only as ~0 (a ~) or ~1 (a /)",
                ))
            } else {
                Ok(t.replace("~1", "/").replace("~0", "~"))
            }
        })
        .collect()
}

impl Edit {
    /// Checks that the edit names a part of the configuration the running
    /// agent follows.
    pub fn check(&self) -> Result<(), ConfigError> {
        tokens(&self.pointer)?;
        let editable = EDITABLE.iter().any(|prefix| {
            self.pointer
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        });
        if !editable {
            let shown = self.value.clone().unwrap_or(Value::Null);
            return Err(ConfigError::invalid(
                ORIGIN,
                &self.pointer,
                &shown,
                "only /status, /properties/configurations/probe_defaults/... and /properties/configurations/probes/... change at run time; service-wide settings are read at start-up (edit the file and restart blippd)",
            ));
        }
        if self.value.is_none() && EDITABLE.contains(&self.pointer.as_str()) {
            return Err(ConfigError::invalid(
                ORIGIN,
                &self.pointer,
                &Value::Null,
                "expected a key inside it, not the whole section",
            ));
        }
        Ok(())
    }

    /// Applies the edit to `doc` (any part of it: [`Edit::check`] says
    /// whether the running agent follows it). Setting creates missing
    /// objects on the way; removing a key that is not there is an error
    /// (the operator probably mistyped it).
    pub fn apply(&self, doc: &mut Value) -> Result<(), ConfigError> {
        let keys = tokens(&self.pointer)?;
        let Some((last, parents)) = keys.split_last() else {
            return Err(ConfigError::invalid(
                ORIGIN,
                &self.pointer,
                doc,
                "expected a key, not the whole document",
            ));
        };
        let mut node = doc;
        let mut walked = String::new();
        for key in parents {
            walked.push('/');
            walked.push_str(&escape(key));
            node = match node {
                Value::Object(m) => {
                    if self.value.is_some() {
                        m.entry(key.clone())
                            .or_insert_with(|| Value::Object(Map::new()))
                    } else {
                        m.get_mut(key).ok_or_else(|| missing(&walked))?
                    }
                }
                other => return Err(not_an_object(&walked, other)),
            };
        }
        let Value::Object(m) = node else {
            return Err(not_an_object(&walked, node));
        };
        match &self.value {
            Some(v) => {
                m.insert(last.clone(), v.clone());
            }
            None => {
                if m.remove(last).is_none() {
                    return Err(missing(&self.pointer));
                }
            }
        }
        Ok(())
    }
}

fn missing(pointer: &str) -> ConfigError {
    ConfigError::Missing {
        origin: ORIGIN.to_owned(),
        pointer: pointer.to_owned(),
    }
}

fn not_an_object(pointer: &str, value: &Value) -> ConfigError {
    ConfigError::invalid(
        ORIGIN,
        if pointer.is_empty() { "/" } else { pointer },
        value,
        "expected an object to hold the key",
    )
}

/// The edits in effect, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Edits(Vec<Edit>);

impl Edits {
    /// No edits.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// These edits plus `edit`, which supersedes earlier edits of the same
    /// key or of keys inside it.
    pub fn with(&self, edit: Edit) -> Result<Edits, ConfigError> {
        edit.check()?;
        let mut list: Vec<Edit> = self
            .0
            .iter()
            .filter(|e| {
                !(e.pointer == edit.pointer
                    || e.pointer
                        .strip_prefix(&edit.pointer)
                        .is_some_and(|rest| rest.starts_with('/')))
            })
            .cloned()
            .collect();
        if list.len() >= MAX_EDITS {
            return Err(ConfigError::invalid(
                ORIGIN,
                &edit.pointer,
                &edit.value.unwrap_or(Value::Null),
                format!(
                    "at most {MAX_EDITS} edits are kept: `blippcmd reload` starts over from the file"
                ),
            ));
        }
        list.push(edit);
        Ok(Edits(list))
    }

    /// `base` with every edit applied, in order.
    pub fn apply(&self, base: &Value) -> Result<Value, ConfigError> {
        let mut doc = base.clone();
        for e in &self.0 {
            e.apply(&mut doc)?;
        }
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(pointer: &str, value: Value) -> Edit {
        Edit {
            pointer: pointer.to_owned(),
            value: Some(value),
        }
    }

    fn del(pointer: &str) -> Edit {
        Edit {
            pointer: pointer.to_owned(),
            value: None,
        }
    }

    #[test]
    fn probe_keys_with_dots_are_nested_and_escaped() {
        assert_eq!(
            probe_pointer("cpu", "schedule_params.every"),
            "/properties/configurations/probes/cpu/schedule_params/every"
        );
        assert_eq!(
            probe_pointer("a/b~c", "status"),
            "/properties/configurations/probes/a~1b~0c/status"
        );
    }

    #[test]
    fn values_typed_on_a_command_line() {
        assert_eq!(value_from_arg("5"), json!(5));
        assert_eq!(value_from_arg("0.5"), json!(0.5));
        assert_eq!(value_from_arg("true"), json!(true));
        assert_eq!(value_from_arg("[\"eth0\"]"), json!(["eth0"]));
        assert_eq!(value_from_arg("OFF"), json!("OFF"));
        assert_eq!(value_from_arg("\"5\""), json!("5"));
        assert_eq!(value_from_arg("builtins.simple"), json!("builtins.simple"));
    }

    #[test]
    fn set_creates_objects_and_delete_removes() {
        let mut doc =
            json!({"properties": {"configurations": {"probes": {"cpu": {"probe_module": "cpu"}}}}});
        set(
            "/properties/configurations/probes/cpu/schedule_params/every",
            json!(1),
        )
        .apply(&mut doc)
        .unwrap();
        assert_eq!(
            doc.pointer("/properties/configurations/probes/cpu/schedule_params/every"),
            Some(&json!(1))
        );
        del("/properties/configurations/probes/cpu/schedule_params")
            .apply(&mut doc)
            .unwrap();
        assert_eq!(
            doc,
            json!({"properties": {"configurations": {"probes": {"cpu": {"probe_module": "cpu"}}}}})
        );
        let e = del("/properties/configurations/probes/gpu")
            .apply(&mut doc)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "control socket: /properties/configurations/probes/gpu: no such key in the running configuration"
        );
    }

    #[test]
    fn refuses_what_only_start_up_reads_and_non_pointers() {
        let e = set("/properties/configurations/unis_url", json!("http://x"))
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("/properties/configurations/unis_url"), "{e}");
        assert!(e.contains("read at start-up"), "{e}");
        assert!(set("properties/x", json!(1)).check().is_err());
        assert!(
            set("/properties/configurations/probesx", json!(1))
                .check()
                .is_err()
        );
        assert!(del("/properties/configurations/probes").check().is_err());
        assert!(set("/status", json!("OFF")).check().is_ok());
        assert!(
            set("/properties/configurations/probes/a~2", json!(1))
                .check()
                .is_err()
        );
    }

    #[test]
    fn walking_through_a_value_is_an_error_naming_it() {
        let mut doc = json!({"properties": {"configurations": {"probes": {"cpu": 3}}}});
        let e = set("/properties/configurations/probes/cpu/status", json!("ON"))
            .apply(&mut doc)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "control socket: /properties/configurations/probes/cpu: 3 is invalid: expected an object to hold the key"
        );
    }

    #[test]
    fn later_edits_supersede_and_replay_in_order() {
        let p = "/properties/configurations/probes/cpu";
        let edits = Edits::default()
            .with(set(&format!("{p}/schedule_params/every"), json!(1)))
            .unwrap()
            .with(set(&format!("{p}/status"), json!("OFF")))
            .unwrap()
            .with(set(&format!("{p}/schedule_params"), json!({"every": 3})))
            .unwrap();
        assert_eq!(edits.len(), 2, "the every edit is superseded");
        let base = json!({"properties": {"configurations": {"probes": {"cpu": {"probe_module": "cpu", "schedule_params": {"every": 5, "start_time": 0}}}}}});
        let doc = edits.apply(&base).unwrap();
        assert_eq!(
            doc.pointer(p).unwrap(),
            &json!({"probe_module": "cpu", "status": "OFF", "schedule_params": {"every": 3}})
        );
        let mut many = Edits::default();
        for i in 0..MAX_EDITS {
            many = many.with(set(&format!("{p}/k{i}"), json!(i))).unwrap();
        }
        assert!(many.with(set(&format!("{p}/more"), json!(1))).is_err());
        assert!(
            many.with(set(&format!("{p}/k0"), json!(1))).is_ok(),
            "replacing one is not adding one"
        );
    }
}
