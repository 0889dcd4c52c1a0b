//! Reading, validating and merging configuration sources.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::probe::parse_status;
use super::{Config, ConfigError, Mode, ProbeConfig, Settings, Tls, merge::merge, schema};

const DEFAULTS: &str = include_str!("default.json");

/// The built-in configuration: CPU, memory, network and disk every 5 s, no
/// server.
pub fn builtin_defaults() -> Value {
    serde_json::from_str(DEFAULTS).expect("built-in defaults are JSON")
}

/// What the command line says, applied over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `-u`: UNIS URL.
    pub unis_url: Option<String>,
    /// `-s`: the service's UNIS id.
    pub service_id: Option<String>,
    /// `--mode`: every probe's mode.
    pub mode: Option<Mode>,
    /// `--proc-dir`: every probe's /proc root.
    pub proc_dir: Option<PathBuf>,
    /// `--sys-dir`: every probe's /sys root.
    pub sys_dir: Option<PathBuf>,
}

impl Overrides {
    fn to_json(&self) -> Value {
        let mut configurations = Map::new();
        if let Some(url) = &self.unis_url {
            configurations.insert("unis_url".into(), Value::String(url.clone()));
        }
        let mut defaults = Map::new();
        if let Some(mode) = self.mode {
            let name = match mode {
                Mode::Auto => "auto",
                Mode::Ebpf => "ebpf",
                Mode::Proc => "proc",
            };
            defaults.insert("mode".into(), Value::String(name.into()));
        }
        if let Some(dir) = &self.proc_dir {
            defaults.insert("proc_dir".into(), Value::String(dir.display().to_string()));
        }
        if let Some(dir) = &self.sys_dir {
            defaults.insert("sys_dir".into(), Value::String(dir.display().to_string()));
        }
        if !defaults.is_empty() {
            configurations.insert("probe_defaults".into(), Value::Object(defaults));
        }
        let mut doc = Map::new();
        if let Some(id) = &self.service_id {
            doc.insert("id".into(), Value::String(id.clone()));
        }
        if !configurations.is_empty() {
            let mut props = Map::new();
            props.insert("configurations".into(), Value::Object(configurations));
            doc.insert("properties".into(), Value::Object(props));
        }
        Value::Object(doc)
    }
}

fn read_json(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// Loads the configuration: built-in defaults < `file` < `overrides`.
///
/// The file is validated on its own first, so that error pointers refer to
/// the file as written. Built-in probes apply only when neither the file nor
/// the command line names any: a file that lists probes gets exactly those.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    let mut doc = builtin_defaults();
    if let Some(path) = file {
        let file_doc = read_json(path)?;
        let origin = path.display().to_string();
        schema::validate(&origin, &file_doc)?;
        if file_doc
            .pointer("/properties/configurations/probes")
            .is_some()
            && let Some(obj) = doc
                .pointer_mut("/properties/configurations")
                .and_then(Value::as_object_mut)
        {
            obj.remove("probes");
        }
        merge(&mut doc, file_doc);
    }
    merge(&mut doc, overrides.to_json());
    schema::validate("merged configuration", &doc)?;
    resolve(doc)
}

/// Turns a validated service object into a [`Config`].
pub fn resolve(doc: Value) -> Result<Config, ConfigError> {
    let origin = "configuration";
    let empty = Map::new();
    let conf = doc
        .pointer("/properties/configurations")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let str_of = |key: &str| {
        conf.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let num_of = |key: &str, default: f64| conf.get(key).and_then(Value::as_f64).unwrap_or(default);
    let settings = Settings {
        unis_url: str_of("unis_url").map(str::to_owned),
        unis_poll_interval: num_of("unis_poll_interval", 300.0),
        unis_max_backoff: num_of("unis_max_backoff", 3600.0),
        tls: Tls {
            use_ssl: conf
                .get("use_ssl")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            ssl_cert: str_of("ssl_cert").map(PathBuf::from),
            ssl_key: str_of("ssl_key").map(PathBuf::from),
            ssl_cafile: str_of("ssl_cafile").map(PathBuf::from),
        },
    };
    let defaults = conf
        .get("probe_defaults")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut probes = Vec::new();
    if let Some(Value::Object(entries)) = conf.get("probes") {
        for (name, entry) in entries {
            let pointer = format!("/properties/configurations/probes/{name}");
            let Value::Object(entry) = entry else {
                return Err(ConfigError::invalid(
                    origin,
                    &pointer,
                    entry,
                    "expected an object",
                ));
            };
            let mut merged = Value::Object(defaults.clone());
            merge(&mut merged, Value::Object(entry.clone()));
            let Value::Object(merged) = merged else {
                unreachable!("merging objects gives an object")
            };
            probes.push(ProbeConfig::resolve(origin, &pointer, name, merged)?);
        }
    }
    Ok(Config {
        status: parse_status(doc.get("status").and_then(Value::as_str)),
        service: doc,
        settings,
        probes,
    })
}
