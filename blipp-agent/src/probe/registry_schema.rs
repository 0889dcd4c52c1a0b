//! The registry is the one source of the schema's probe list: the
//! `probe_module` enum and the rule that applies `$defs/options_<module>`
//! to each module are generated from [`REGISTRY`], and each
//! `$defs/options_<module>` must list exactly the keys of the options type
//! the probe parses. Adding a probe is then its module, its row and its
//! `options_<module>` definition; `BLIPP_BLESS_SCHEMA=1 cargo test -p
//! blipp-agent registry_schema` writes the generated part into
//! `schemas/blipp-config.schema.json`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use super::{ProbeSpec, REGISTRY};
use crate::config::schema::SCHEMA_TEXT;

/// `$defs/probe` as the registry makes it.
fn generated_probe_def() -> Value {
    let modules: Vec<&str> = REGISTRY.iter().map(|s| s.module).collect();
    let mut all_of = vec![json!({"$ref": "#/$defs/probe_common"})];
    all_of.extend(modules.iter().map(|m| {
        json!({
            "if": {"properties": {"probe_module": {"const": m}}},
            "then": {"$ref": format!("#/$defs/options_{m}")}
        })
    }));
    json!({
        "type": "object",
        "required": ["probe_module"],
        "properties": {
            "probe_module": {
                "description": "Which probe this is (the registry in blipp-agent/src/probe/mod.rs).",
                "enum": modules
            }
        },
        "allOf": all_of,
        "unevaluatedProperties": false
    })
}

fn schema() -> Value {
    serde_json::from_str(SCHEMA_TEXT).expect("embedded schema is JSON")
}

/// `text` with its `$defs/probe` replaced by `def`, the rest untouched
/// (serde_json would sort every object's keys if the whole file were
/// written back).
fn splice(text: &str, def: &Value) -> String {
    const OPEN: &str = "\n    \"probe\": {\n";
    let start = text.find(OPEN).expect("a $defs/probe") + 1;
    let end = start + text[start..].find("\n    },\n").expect("its end") + "\n    }".len();
    let body = serde_json::to_string_pretty(def)
        .expect("JSON")
        .replace('\n', "\n    ");
    format!("{}    \"probe\": {body}{}", &text[..start], &text[end..])
}

#[test]
fn the_schema_probe_list_is_generated_from_the_registry() {
    let want = generated_probe_def();
    if schema()["$defs"]["probe"] == want {
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/blipp-config.schema.json");
    if std::env::var_os("BLIPP_BLESS_SCHEMA").is_some() {
        std::fs::write(&path, splice(SCHEMA_TEXT, &want)).expect("write the schema");
        return;
    }
    panic!(
        "$defs/probe in {} is not what REGISTRY makes; run \
         BLIPP_BLESS_SCHEMA=1 cargo test -p blipp-agent registry_schema",
        path.display()
    );
}

/// The property names a schema object allows, through `$ref` and `allOf`,
/// and whether it allows any other key.
fn schema_keys(schema: &Value, def: &Value, keys: &mut BTreeSet<String>) -> bool {
    let mut open = def["additionalProperties"] == json!(true);
    if let Some(props) = def["properties"].as_object() {
        keys.extend(props.keys().cloned());
    }
    if let Some(target) = def["$ref"].as_str() {
        let target = schema
            .pointer(target.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{target} does not resolve"));
        open |= schema_keys(schema, target, keys);
    }
    for part in def["allOf"].as_array().into_iter().flatten() {
        open |= schema_keys(schema, part, keys);
    }
    open
}

/// Whether `$defs/options_<module>` in `schema` allows exactly the keys
/// `spec`'s options type parses.
fn check_options(schema: &Value, spec: &ProbeSpec) -> Result<(), String> {
    let name = format!("options_{}", spec.module);
    let def = schema["$defs"]
        .get(&name)
        .ok_or_else(|| format!("no $defs/{name} for probe {}", spec.module))?;
    let mut keys = BTreeSet::new();
    let open = schema_keys(schema, def, &mut keys);
    // The original's `kwargs` is folded into the probe's own keys before
    // they are parsed.
    keys.remove("kwargs");
    match (spec.options)() {
        Some(parsed) => {
            let parsed: BTreeSet<String> = parsed.iter().map(|k| (*k).to_owned()).collect();
            if keys == parsed {
                Ok(())
            } else {
                Err(format!(
                    "$defs/{name} allows {keys:?}, {}'s options type parses {parsed:?}",
                    spec.module
                ))
            }
        }
        // Options with a flattened part (the command probes): any key may
        // be a `$key` word, so the schema must leave them open.
        None if open => Ok(()),
        None => Err(format!(
            "$defs/{name} is closed, {}'s options are not",
            spec.module
        )),
    }
}

#[test]
fn every_options_def_lists_exactly_the_keys_its_probe_parses() {
    let schema = schema();
    for spec in REGISTRY {
        check_options(&schema, spec).unwrap();
    }
    let defs = schema["$defs"].as_object().expect("$defs");
    for name in defs.keys().filter_map(|k| k.strip_prefix("options_")) {
        assert!(
            super::spec(name).is_some(),
            "$defs/options_{name} names no probe"
        );
    }
}

/// The check fails when the schema and the struct part ways, either way.
#[test]
fn a_key_on_one_side_only_is_found() {
    let numa = &super::numa::SPEC;
    let mut schema = schema();
    schema["$defs"]["options_numa"]["properties"]["extra"] = json!({});
    let e = check_options(&schema, numa).unwrap_err();
    assert!(e.contains("\"extra\""), "{e}");
    let mut schema = self::schema();
    schema["$defs"]["options_numa"]["properties"] = json!({});
    assert!(check_options(&schema, numa).is_err());
    let mut schema = self::schema();
    schema["$defs"]["options_cmd"]["allOf"] = json!([]);
    assert!(check_options(&schema, &super::cmd::SPEC).is_err());
}

#[test]
fn splicing_keeps_the_rest_of_the_file() {
    let text = "{\n  \"$defs\": {\n    \"a\": 1,\n    \"probe\": {\n      \"x\": [\n        1\n      ]\n    },\n    \"b\": 2\n  }\n}\n";
    let out = splice(text, &json!({"y": 2}));
    assert_eq!(
        out,
        "{\n  \"$defs\": {\n    \"a\": 1,\n    \"probe\": {\n      \"y\": 2\n    },\n    \"b\": 2\n  }\n}\n"
    );
}
