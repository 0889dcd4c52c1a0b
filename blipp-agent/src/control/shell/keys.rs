//! The keys the configuration schema allows at a JSON pointer, so that the
//! shell completes a key that is not set yet (`schedule_params` of a probe
//! that has none, a `cmd` probe's `regex`), and the values an `enum`
//! allows (`status`: `ON`, `OFF`).
//!
//! The walk follows what the schema uses: `properties`,
//! `additionalProperties`, `$ref` into `$defs`, `allOf`, `anyOf`, `oneOf`,
//! and `if`/`then` on a `const` (a probe's `probe_module` selects its
//! `options_<module>`), judged against the configuration at hand.

use std::collections::BTreeMap;

use serde_json::Value;

/// The schema's subschemas that apply at one place.
struct Here<'a> {
    root: &'a Value,
    schemas: Vec<&'a Value>,
}

impl<'a> Here<'a> {
    fn top(root: &'a Value, config: Option<&Value>) -> Self {
        let mut here = Here {
            root,
            schemas: Vec::new(),
        };
        here.add(root, config, 0);
        here
    }

    /// Adds `schema` and what it pulls in; `depth` stops a `$ref` cycle.
    fn add(&mut self, schema: &'a Value, config: Option<&Value>, depth: u8) {
        if depth > 16 {
            return;
        }
        if let Some(target) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|p| self.root.pointer(p))
        {
            self.add(target, config, depth + 1);
        }
        self.schemas.push(schema);
        for group in ["allOf", "anyOf", "oneOf"] {
            for s in schema
                .get(group)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.add(s, config, depth + 1);
            }
        }
        if let (Some(cond), Some(then)) = (schema.get("if"), schema.get("then"))
            && holds(cond, config)
        {
            self.add(then, config, depth + 1);
        }
    }

    /// The subschemas of key `key`, for the configuration `config` there.
    fn child(&self, key: &str, config: Option<&Value>) -> Here<'a> {
        let mut next = Here {
            root: self.root,
            schemas: Vec::new(),
        };
        for s in &self.schemas {
            match s.get("properties").and_then(|p| p.get(key)) {
                Some(p) => next.add(p, config, 0),
                None => {
                    if let Some(extra) = s.get("additionalProperties").filter(|a| a.is_object()) {
                        next.add(extra, config, 0);
                    }
                }
            }
        }
        next
    }

    fn is_object(&self) -> bool {
        self.schemas
            .iter()
            .any(|s| s.get("type") == Some(&Value::from("object")) || s.get("properties").is_some())
    }
}

/// Whether an `if` of `const`s holds for `config` (one the walk cannot
/// judge does not).
fn holds(cond: &Value, config: Option<&Value>) -> bool {
    let Some(props) = cond.get("properties").and_then(Value::as_object) else {
        return false;
    };
    props.iter().all(|(k, s)| match s.get("const") {
        Some(c) => config.and_then(|v| v.get(k)) == Some(c),
        None => false,
    })
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn walk<'a>(schema: &'a Value, config: &Value, pointer: &str) -> Here<'a> {
    let mut here = Here::top(schema, Some(config));
    let mut walked = String::new();
    for token in pointer.split('/').skip(1) {
        walked.push('/');
        walked.push_str(token);
        here = here.child(&unescape(token), config.pointer(&walked));
    }
    here
}

/// The keys the schema allows in the object at `pointer` of `config`, each
/// with whether it holds an object.
pub fn allowed(schema: &Value, config: &Value, pointer: &str) -> BTreeMap<String, bool> {
    let here = walk(schema, config, pointer);
    let mut keys = BTreeMap::new();
    for s in &here.schemas {
        for k in s
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            let object = here
                .child(k, config.pointer(&format!("{pointer}/{k}")))
                .is_object();
            keys.insert(k.clone(), object);
        }
    }
    keys
}

/// The values an `enum` of the schema allows at `pointer`, as typed.
pub fn values(schema: &Value, config: &Value, pointer: &str) -> Vec<String> {
    let here = walk(schema, config, pointer);
    let mut out: Vec<String> = here
        .schemas
        .iter()
        .filter_map(|s| s.get("enum").and_then(Value::as_array))
        .flatten()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        serde_json::from_str(crate::config::schema::SCHEMA_TEXT).unwrap_or_default()
    }

    fn config() -> Value {
        json!({"properties": {"configurations": {"probes": {
            "ping": {"probe_module": "cmd", "command": "ping -c1 localhost"},
            "cpu": {"probe_module": "cpu"}
        }}}})
    }

    #[test]
    fn a_probe_gets_the_common_keys_and_its_module_s() {
        let keys = allowed(
            &schema(),
            &config(),
            "/properties/configurations/probes/ping",
        );
        for k in ["schedule_params", "status", "data_file", "regex", "command"] {
            assert!(keys.contains_key(k), "{k} in {keys:?}");
        }
        assert_eq!(keys.get("schedule_params"), Some(&true));
        assert_eq!(keys.get("status"), Some(&false));
        let cpu = allowed(
            &schema(),
            &config(),
            "/properties/configurations/probes/cpu",
        );
        assert!(!cpu.contains_key("regex"), "{cpu:?}");
        assert!(cpu.contains_key("schedule_params"));
    }

    #[test]
    fn sections_and_nested_keys() {
        let keys = allowed(&schema(), &config(), "/properties/configurations");
        for k in ["probes", "probe_defaults", "unis_url", "trust"] {
            assert!(keys.contains_key(k), "{k} in {keys:?}");
        }
        let every = allowed(
            &schema(),
            &config(),
            "/properties/configurations/probes/cpu/schedule_params",
        );
        assert!(every.contains_key("every"), "{every:?}");
        assert!(allowed(&schema(), &config(), "/nowhere/at/all").is_empty());
    }

    #[test]
    fn enums_are_offered() {
        let mode = values(
            &schema(),
            &config(),
            "/properties/configurations/probes/cpu/mode",
        );
        assert_eq!(mode, vec!["auto", "ebpf", "proc"]);
        assert!(values(&schema(), &config(), "/properties/configurations/probes").is_empty());
    }
}
