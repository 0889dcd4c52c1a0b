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
pub fn validate(origin: &str, doc: &Value) -> Result<(), ConfigError> {
    let best = validator()
        .iter_errors(doc)
        .max_by_key(|e| e.instance_path().as_str().matches('/').count());
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
        K::OneOfNotValid { .. } | K::OneOfMultipleValid { .. } => {
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
