//! The real server's JSON Schemas (draft-04), compiled once per server:
//! every body the test server stores is validated with the schema of its
//! collection, as the periscope server does.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// The schema base the server's own `$schema` ids use.
pub const BASE: &str = "http://unis.crest.iu.edu/schema/20151104/";

/// One compiled validator per schema name (`node`, `port`, `service`,
/// `measurement`, `metadata`, `data`, `datum`, `link`).
pub struct Schemas {
    validators: HashMap<&'static str, jsonschema::Validator>,
    /// References that cannot be resolved inside their own file, replaced by
    /// a schema nothing satisfies (see [`Schemas::load`]).
    pub dangling: Vec<String>,
}

const NAMES: [&str; 8] = [
    "node",
    "port",
    "link",
    "service",
    "measurement",
    "metadata",
    "data",
    "datum",
];

impl Schemas {
    /// Loads every `*.json` in `dir` into one registry keyed by the files'
    /// own `id`s (`http://unis.crest.iu.edu/schema/20151104/...` and the
    /// json-schema.org draft-04 meta-schemas), so no reference is fetched
    /// from the network.
    ///
    /// `measurement.json` refers to `#/networkresource/lifetimes`, which does
    /// not exist in that file. The real server's Python validator resolves
    /// references lazily, so it fails (400) only for a measurement that has
    /// `scheduled_times`; this crate resolves them when compiling. Such a
    /// reference is replaced by `{"not": {}}`, which fails exactly the bodies
    /// the real server fails, and listed in [`Schemas::dangling`].
    pub fn load(dir: &Path) -> Result<Self> {
        let mut docs: Vec<(String, Value)> = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let doc: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            let Some(id) = doc.get("id").and_then(Value::as_str) else {
                bail!("{} has no id", path.display());
            };
            docs.push((id.trim_end_matches('#').to_owned(), doc));
        }
        let mut dangling = Vec::new();
        for (id, doc) in &mut docs {
            let root = doc.clone();
            cut_dangling_refs(doc, &root, id, &mut dangling);
        }
        let registry = jsonschema::Registry::new()
            .draft(jsonschema::Draft::Draft4)
            .retrieve_known_draft_meta_schemas(false)
            .extend(docs.iter().map(|(id, doc)| {
                (
                    id.clone(),
                    jsonschema::Draft::Draft4.create_resource(doc.clone()),
                )
            }))?
            .prepare()
            .context("schema registry")?;
        let mut validators = HashMap::new();
        for name in NAMES {
            let id = format!("{BASE}{name}");
            let Some((_, doc)) = docs.iter().find(|(i, _)| *i == id) else {
                bail!("{} has no {name}.json", dir.display());
            };
            // The Python server validates without a format checker: formats
            // are annotations there, so they are here.
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft4)
                .with_registry(&registry)
                .should_validate_formats(false)
                .build(doc)
                .map_err(|e| anyhow::anyhow!("compiling {name}.json: {e}"))?;
            validators.insert(name, validator);
        }
        Ok(Self {
            validators,
            dangling,
        })
    }

    /// Validates `value` against schema `name`; the error reads like the
    /// real server's: `'<property>' is a required property`,
    /// `Additional properties are not allowed ('foo' was unexpected)`.
    pub fn validate(&self, name: &str, value: &Value) -> Result<(), String> {
        let Some(validator) = self.validators.get(name) else {
            return Err(format!("no schema {name}"));
        };
        match validator.iter_errors(value).next() {
            None => Ok(()),
            Some(e) => {
                let at = e.instance_path().to_string();
                let text = e.to_string().replace('"', "'");
                Err(if at.is_empty() {
                    text
                } else {
                    format!("{text} (at {at})")
                })
            }
        }
    }
}

/// Replaces every `$ref` of the form `#/...` that does not resolve inside
/// `root` with a schema that nothing satisfies.
fn cut_dangling_refs(node: &mut Value, root: &Value, id: &str, cut: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref")
                && let Some(pointer) = r.strip_prefix('#')
                && !pointer.is_empty()
                && root.pointer(pointer).is_none()
            {
                cut.push(format!("{id}: {r}"));
                map.clear();
                map.insert("not".into(), Value::Object(serde_json::Map::new()));
                return;
            }
            for v in map.values_mut() {
                cut_dangling_refs(v, root, id, cut);
            }
        }
        Value::Array(items) => {
            for v in items {
                cut_dangling_refs(v, root, id, cut);
            }
        }
        _ => {}
    }
}
