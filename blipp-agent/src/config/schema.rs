//! The JSON Schema of blipp's configuration, compiled once.

use std::sync::OnceLock;

use serde_json::Value;

use super::ConfigError;
use jsonschema::error::ValidationErrorKind as K;

/// `schemas/blipp-config.schema.json`, embedded so that validation needs no
/// file at run time.
pub const SCHEMA_TEXT: &str = include_str!("../../../schemas/blipp-config.schema.json");

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA_TEXT).expect("embedded schema is JSON");
        jsonschema::validator_for(&schema).expect("embedded schema compiles")
    })
}

/// Checks `doc` against the schema. On failure, reports the most specific
/// error (the deepest JSON pointer): the one that names the field to fix.
/// At the same depth, a failed rule wins over the unevaluated keys it
/// leaves behind (a module's keys are "unknown" only because its rule
/// failed).
pub fn validate(origin: &str, doc: &Value) -> Result<(), ConfigError> {
    if let Some((pointer, value, expected)) = super::preset::unknown_schema(doc) {
        return Err(ConfigError::invalid(origin, &pointer, &value, expected));
    }
    let best = validator().iter_errors(doc).max_by_key(|e| {
        (
            e.instance_path().as_str().matches('/').count(),
            !matches!(e.kind(), K::UnevaluatedProperties { .. }),
        )
    });
    let Some(e) = best else { return Ok(()) };
    let pointer = e.instance_path().as_str();
    // An unknown key is reported at the key itself, with its own value.
    if let K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } =
        e.kind()
        && let Some(key) = unexpected.first()
        && let Some(value) = e.instance().get(key)
    {
        let known = match e.kind() {
            K::AdditionalProperties { .. } => known_keys(&e),
            // Allowed keys come from several subschemas here: no short list.
            _ => String::new(),
        };
        return Err(ConfigError::invalid(
            origin,
            &format!("{pointer}/{}", escape(key)),
            value,
            format!("unknown key {key:?}{known}"),
        ));
    }
    Err(ConfigError::invalid(
        origin,
        pointer,
        e.instance(),
        expected(&e),
    ))
}

/// A value that a record written by the original BLiPP holds as a string
/// where the schema wants a number or a boolean (its INI values went into
/// UNIS as strings: `"unis_poll_interval": "30"`, `"use_ssl": "false"`,
/// `"use_ssl": ""`), turned into what the schema wants; an empty string is
/// removed (not set). Returns `(pointer, what was done)` for each, so that
/// the caller can warn. Other errors are left for [`validate`].
pub fn coerce_original_strings(doc: &mut Value) -> Vec<(String, String)> {
    let mut done = Vec::new();
    let mut tried = std::collections::HashSet::new();
    // Each round fixes one error; a document has few.
    for _ in 0..256 {
        let Some((pointer, text)) = validator().iter_errors(doc).find_map(|e| {
            let pointer = e.instance_path().as_str().to_owned();
            let text = e.instance().as_str()?.to_owned();
            (!tried.contains(&pointer)).then_some((pointer, text))
        }) else {
            break;
        };
        tried.insert(pointer.clone());
        let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", &pointer));
        let key = key.replace("~1", "/").replace("~0", "~");
        let t = text.trim();
        // What the string could have meant, in order; `None` is "not set".
        let mut candidates: Vec<Option<Value>> = Vec::new();
        match t.to_ascii_lowercase().as_str() {
            "" => candidates.push(None),
            "true" | "yes" | "on" => candidates.push(Some(Value::Bool(true))),
            "false" | "no" | "off" => candidates.push(Some(Value::Bool(false))),
            _ => {}
        }
        if let Ok(i) = t.parse::<i64>() {
            candidates.push(Some(Value::from(i)));
        }
        if let Some(n) = t.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            candidates.push(Some(Value::Number(n)));
        }
        let original = doc.pointer(&pointer).cloned();
        let fixed = candidates.into_iter().find(|candidate| {
            let Some(Value::Object(obj)) = doc.pointer_mut(parent) else {
                return false;
            };
            match candidate {
                Some(v) => obj.insert(key.clone(), v.clone()),
                None => obj.remove(&key),
            };
            let clean = validator()
                .iter_errors(doc)
                .all(|e| !e.instance_path().as_str().starts_with(pointer.as_str()));
            if !clean
                && let (Some(Value::Object(obj)), Some(o)) = (doc.pointer_mut(parent), &original)
            {
                obj.insert(key.clone(), o.clone());
            }
            clean
        });
        match fixed {
            Some(Some(v)) => done.push((pointer, format!("{text:?} read as {v}"))),
            Some(None) => done.push((pointer, "empty string read as not set".to_owned())),
            None => {}
        }
    }
    done
}

/// JSON-pointer escaping of one key.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// ", expected one of ..." listing the keys the schema allows where an
/// unknown one was found, when the schema names them.
fn known_keys(e: &jsonschema::ValidationError<'_>) -> String {
    let schema: Value = match serde_json::from_str(SCHEMA_TEXT) {
        Ok(v) => v,
        Err(_) => return String::new(),
    };
    // The schema path ends in .../additionalProperties or .../unevaluatedProperties;
    // its parent may list "properties".
    let path = e.schema_path().as_str();
    let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
    let Some(props) = schema
        .pointer(&format!("{parent}/properties"))
        .and_then(Value::as_object)
    else {
        return String::new();
    };
    let names: Vec<&str> = props.keys().map(String::as_str).collect();
    format!(" (known here: {})", names.join(", "))
}

/// The `description` of the schema object holding the failed keyword.
fn schema_description(e: &jsonschema::ValidationError<'_>) -> Option<String> {
    let schema: Value = serde_json::from_str(SCHEMA_TEXT).ok()?;
    let path = e.schema_path().as_str();
    let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
    schema
        .pointer(&format!("{parent}/description"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Phrases a schema error as what was expected, without repeating the value.
fn expected(e: &jsonschema::ValidationError<'_>) -> String {
    match e.kind() {
        K::Enum { options } => format!("expected one of {options}"),
        K::Constant { expected_value } => format!("expected {expected_value}"),
        K::Type { kind } => format!("expected {}", type_names(kind)),
        K::Required { property } => format!("the required key {property} is missing"),
        K::ExclusiveMinimum { limit } => format!("expected a number greater than {limit}"),
        K::Minimum { limit } => format!("expected a number of at least {limit}"),
        K::Maximum { limit } => format!("expected a number of at most {limit}"),
        K::MinLength { .. } => "expected a non-empty string".to_owned(),
        K::Pattern { pattern } => format!("expected a string matching {pattern}"),
        K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
            format!("unknown key(s) {}", unexpected.join(", "))
        }
        // "not valid under any of the schemas listed in the 'oneOf'
        // keyword" names no field; the oneOf's description says what to do.
        K::OneOfNotValid { .. } | K::OneOfMultipleValid { .. } | K::AnyOf { .. } => {
            schema_description(e).map_or_else(|| e.to_string(), |d| format!("expected {d}"))
        }
        _ => e.to_string(),
    }
}

fn type_names(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(t) => format!("a {t}"),
        jsonschema::error::TypeKind::Multiple(ts) => {
            let names: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
            format!("one of the types {}", names.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19: what the original wrote into UNIS as strings.
    #[test]
    fn the_originals_strings_become_what_the_schema_wants() {
        let mut doc = serde_json::json!({"status": "ON", "properties": {"configurations": {
            "unis_poll_interval": "30", "use_ssl": "false", "ssl_cafile": "",
            "unis_max_backoff": "3600",
            "probe_defaults": {"reporting_params": "1", "schedule_params": {"every": "2"}},
            "probes": {"cpu": {"probe_module": "cpu", "collection_ttl": "1500000"}}}}});
        let done = coerce_original_strings(&mut doc);
        let c = &doc["properties"]["configurations"];
        assert_eq!(c["unis_poll_interval"], 30.0);
        assert_eq!(c["unis_max_backoff"], 3600.0);
        assert_eq!(c["use_ssl"], false);
        assert_eq!(c["ssl_cafile"], "", "valid as it is");
        assert_eq!(c["probe_defaults"]["reporting_params"], 1);
        assert_eq!(c["probe_defaults"]["schedule_params"]["every"], 2.0);
        assert_eq!(c["probes"]["cpu"]["collection_ttl"], 1_500_000);
        assert_eq!(done.len(), 6, "{done:?}");
        validate("unis", &doc).unwrap();
        let mut bad =
            serde_json::json!({"properties": {"configurations": {"unis_poll_interval": "soon"}}});
        assert!(coerce_original_strings(&mut bad).is_empty());
        assert!(validate("unis", &bad).is_err());
    }
    use crate::limits::{MAX_EPOCH_SECONDS, MAX_INTERVAL, MIN_INTERVAL};
    use serde_json::json;

    /// The schema repeats the bounds of `limits`: they must agree.
    #[test]
    fn interval_bounds_match_the_limits_module() {
        let schema: Value = serde_json::from_str(SCHEMA_TEXT).unwrap();
        let defs = &schema["$defs"];
        let intervals = [
            &defs["configurations"]["properties"]["unis_poll_interval"],
            &defs["configurations"]["properties"]["unis_max_backoff"],
            &defs["schedule_params"]["properties"]["every"],
            &defs["schedule_params"]["properties"]["high"],
            &defs["schedule_params"]["properties"]["max"],
            &defs["options_port"]["properties"]["refresh"],
        ];
        for s in intervals {
            assert_eq!(s["minimum"].as_f64(), Some(MIN_INTERVAL), "{s}");
            assert_eq!(s["maximum"].as_f64(), Some(MAX_INTERVAL), "{s}");
        }
        for key in ["low", "max_wait", "duration"] {
            let s = &defs["schedule_params"]["properties"][key];
            assert_eq!(s["maximum"].as_f64(), Some(MAX_INTERVAL), "{key}");
        }
        for key in ["start_time", "end_time"] {
            let s = &defs["schedule_params"]["properties"][key];
            assert_eq!(s["maximum"].as_f64(), Some(MAX_EPOCH_SECONDS), "{key}");
        }
    }

    /// Issue 16: `every: 1e-9` and `start_time: 1e300` are refused with the
    /// field's own pointer and the bound.
    #[test]
    fn absurd_intervals_are_refused_naming_the_bound() {
        let doc = |params: Value| {
            json!({"properties": {"configurations": {"probes": {"c": {
                "probe_module": "cpu", "schedule_params": params}}}}})
        };
        let e = validate("f.json", &doc(json!({"every": 1e-9})))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "f.json: /properties/configurations/probes/c/schedule_params/every: 1e-9 is invalid: expected a number of at least 0.1"
        );
        let e = validate("f.json", &doc(json!({"every": 1, "start_time": 1e300})))
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("schedule_params/start_time: 1e+300 is invalid: expected a number of at most 32503680000"),
            "{e}"
        );
        let poll = json!({"properties": {"configurations": {"unis_poll_interval": 1e308}}});
        assert!(validate("f.json", &poll).is_err());
    }
}
