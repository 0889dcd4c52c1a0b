//! The original BLiPP's own local files, read when present so that a host
//! migrating from it keeps its settings: the INI file
//! `/etc/periscope/blippd.conf` (its settings.py read `[main]` keys into
//! the service's configurations and each other section with a `module`
//! into a probe) and `/usr/local/etc/node.info` (`key=value` lines; its
//! `ms_instance` became every probe's `ms_url`, its `auth_uuid` the
//! GENI slice). In the original they sit below the JSON file and the
//! command line; here too: built-in defaults < these < file < command line.
//!
//! The original kept every INI value as a string (`use_ssl = false` was
//! the non-empty, so true, string "false"); here values get the types the
//! configuration has, and a value that has none of them is refused with
//! the usual one line. Empty values mean "not set", as the sample file's
//! `data_file =` intends.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::ConfigError;

/// Where the original's INI file is, by default.
pub const INI_FILE: &str = "/etc/periscope/blippd.conf";
/// Where the original's node.info is, by default.
pub const NODE_INFO_FILE: &str = "/usr/local/etc/node.info";

/// Which of the original's files to read: a path given on the command
/// line must exist; the default paths are read when present.
#[derive(Clone, Debug, Default)]
pub struct OriginalFiles {
    /// The INI file, and whether it was named explicitly.
    pub ini: Option<(PathBuf, bool)>,
    /// node.info, and whether it was named explicitly.
    pub node_info: Option<(PathBuf, bool)>,
}

impl OriginalFiles {
    /// The default paths, read when present.
    pub fn defaults() -> Self {
        Self {
            ini: Some((PathBuf::from(INI_FILE), false)),
            node_info: Some((PathBuf::from(NODE_INFO_FILE), false)),
        }
    }
}

/// `[main]` keys the original read, and their types here.
const MAIN_KEYS: [(&str, Kind); 8] = [
    ("unis_url", Kind::Text),
    ("ms_url", Kind::Text),
    ("data_file", Kind::Text),
    ("ssl_cert", Kind::Text),
    ("ssl_key", Kind::Text),
    ("ssl_cafile", Kind::Text),
    ("unis_poll_interval", Kind::Number),
    ("use_ssl", Kind::Bool),
];

/// `[main]` keys that are every probe's in blipp (`probe_defaults`): the
/// original put them beside the service's own settings, where probes
/// looked for them when their own configuration had none.
pub const PROBE_DEFAULTS: [&str; 2] = ["ms_url", "data_file"];

/// The probe modules the original read from the INI file, with their own
/// keys and their types.
const MODULE_KEYS: [(&str, &[(&str, Kind)]); 4] = [
    (
        "registration_probe",
        &[
            ("service_type", Kind::Text),
            ("service_name", Kind::Text),
            ("service_description", Kind::Text),
            ("service_accesspoint", Kind::Text),
            ("pidfile", Kind::Text),
            ("process_name", Kind::Text),
            ("service_ttl", Kind::Integer),
        ],
    ),
    ("net", &[("unis_url", Kind::Text)]),
    ("cpu", &[("proc_dir", Kind::Text)]),
    ("mem", &[]),
];

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Number,
    Integer,
    Bool,
}

/// The sections of an INI file as Python's RawConfigParser reads them:
/// `[section]` headers, `key = value` or `key: value` (keys lowercased),
/// comment lines starting with `#` or `;`, and indented continuation
/// lines joined with a newline.
fn sections(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            out.push((name.trim().to_owned(), Vec::new()));
            continue;
        }
        let Some((_, keys)) = out.last_mut() else {
            continue;
        };
        if line.starts_with([' ', '\t'])
            && let Some((_, value)) = keys.last_mut()
        {
            value.push('\n');
            value.push_str(trimmed);
            continue;
        }
        let split = trimmed.find(['=', ':']);
        if let Some(at) = split {
            let (key, value) = trimmed.split_at(at);
            keys.push((
                key.trim().to_ascii_lowercase(),
                value[1..].trim().to_owned(),
            ));
        }
    }
    out
}

fn typed(origin: &str, pointer: &str, value: &str, kind: Kind) -> Result<Value, ConfigError> {
    let bad = |expected: &str| {
        ConfigError::invalid(origin, pointer, &Value::String(value.to_owned()), expected)
    };
    match kind {
        Kind::Text => Ok(Value::String(value.to_owned())),
        Kind::Number => value
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(|n| json!(n))
            .ok_or_else(|| bad("a number")),
        Kind::Integer => value
            .parse::<u64>()
            .map(|n| json!(n))
            .map_err(|_| bad("a whole number")),
        // ConfigParser.getboolean's words.
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "1" | "yes" | "true" | "on" => Ok(Value::Bool(true)),
            "0" | "no" | "false" | "off" => Ok(Value::Bool(false)),
            _ => Err(bad("true or false (yes/no, on/off, 1/0)")),
        },
    }
}

/// What the INI file `text` (read from `origin`) sets, as a service
/// document, and the sections skipped with the reason.
pub fn from_ini(origin: &str, text: &str) -> Result<(Value, Vec<String>), ConfigError> {
    let mut configurations = Map::new();
    let mut defaults = Map::new();
    let mut probes = Map::new();
    let mut skipped = Vec::new();
    for (section, keys) in sections(text) {
        let get = |key: &str| {
            keys.iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        if section == "main" {
            for (key, kind) in MAIN_KEYS {
                if let Some(v) = get(key) {
                    let pointer = format!("/main/{key}");
                    let value = typed(origin, &pointer, v, kind)?;
                    if PROBE_DEFAULTS.contains(&key) {
                        defaults.insert(key.to_owned(), value);
                    } else {
                        configurations.insert(key.to_owned(), value);
                    }
                }
            }
            continue;
        }
        let Some(module) = get("module") else {
            skipped.push(format!("[{section}]: no module"));
            continue;
        };
        let Some((_, own)) = MODULE_KEYS.iter().find(|(m, _)| *m == module) else {
            skipped.push(format!(
                "[{section}]: module {module} is not read from the INI file"
            ));
            continue;
        };
        let mut probe = Map::new();
        probe.insert("probe_module".into(), json!(module));
        if let Some(v) = get("interval") {
            let every = typed(origin, &format!("/{section}/interval"), v, Kind::Number)?;
            probe.insert("schedule_params".into(), json!({ "every": every }));
        }
        for (key, kind) in *own {
            if let Some(v) = get(key) {
                let value = typed(origin, &format!("/{section}/{key}"), v, *kind)?;
                probe.insert((*key).to_owned(), value);
            }
        }
        probes.insert(section, Value::Object(probe));
    }
    if !probes.is_empty() {
        configurations.insert("probes".into(), Value::Object(probes));
    }
    if !defaults.is_empty() {
        configurations.insert("probe_defaults".into(), Value::Object(defaults));
    }
    Ok((
        json!({"properties": {"configurations": configurations}}),
        skipped,
    ))
}

/// A service record as the original wrote it into UNIS, made one blipp
/// reads: `ms_url` and `data_file` beside the service's settings move to
/// `probe_defaults` (unless set there), strings where the schema
/// wants a number or a boolean become one, and a probe given by one of
/// its measurement schemas (`$schema`) gets that schema's preset (see
/// [`super::preset`]), so that the trust policy screens the program it
/// would run. Returns what was changed (presets aside), by
/// JSON pointer, for a warning; anything else wrong is left for the
/// schema to refuse.
pub fn normalize(doc: &mut Value) -> Vec<(String, String)> {
    let mut done = Vec::new();
    let base = "/properties/configurations";
    if let Some(Value::Object(conf)) = doc.pointer_mut(base) {
        for key in PROBE_DEFAULTS {
            let Some(value) = conf.remove(key) else {
                continue;
            };
            let defaults = conf
                .entry("probe_defaults")
                .or_insert_with(|| Value::Object(Map::new()));
            let pointer = format!("{base}/{key}");
            match defaults {
                Value::Object(d) if !d.contains_key(key) => {
                    d.insert(key.to_owned(), value);
                    done.push((pointer, format!("moved to {base}/probe_defaults/{key}")));
                }
                _ => done.push((pointer, "ignored: probe_defaults sets it".to_owned())),
            }
        }
    }
    done.extend(super::schema::coerce_original_strings(doc));
    super::preset::expand(doc);
    done
}

/// What node.info `text` sets, as a service document.
pub fn from_node_info(text: &str) -> Value {
    let mut doc = json!({});
    for line in text.lines() {
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let (key, value) = (key.trim(), value.trim_end());
        if value.is_empty() {
            continue;
        }
        match key {
            "ms_instance" => {
                doc["properties"]["configurations"]["probe_defaults"]["ms_url"] = json!(value);
            }
            "auth_uuid" => doc["properties"]["geni"]["slice_uuid"] = json!(value),
            _ => {}
        }
    }
    doc
}

/// Reads the original's files that `files` names (a default path only
/// when present) into one document, logging what it read and skipped.
pub fn read(files: &OriginalFiles) -> Result<Value, ConfigError> {
    let mut doc = json!({});
    let present = |path: &Path, explicit: bool| explicit || path.exists();
    if let Some((path, explicit)) = &files.node_info
        && present(path, *explicit)
    {
        let text = super::load::read_text(path)?;
        super::merge::merge(&mut doc, from_node_info(&text));
        tracing::info!(file = %path.display(), "read the original's node.info");
    }
    if let Some((path, explicit)) = &files.ini
        && present(path, *explicit)
    {
        let text = super::load::read_text(path)?;
        let origin = path.display().to_string();
        let (ini, skipped) = from_ini(&origin, &text)?;
        for why in skipped {
            tracing::warn!(file = %origin, "original INI section skipped: {why}");
        }
        super::merge::merge(&mut doc, ini);
        tracing::info!(file = %origin, "read the original's INI file");
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written from the original's sample `config/blippd.conf` and its
    /// settings.py: the same shape, other values.
    const SAMPLE: &str = "\
##################
[main]

# URL of the UNIS server
unis_url = http://unis.example:8888
ms_url = http://ms.example:8888
data_file =
use_ssl = false
ssl_cert =
unis_poll_interval = 30

[net]
module = net
unis_url = http://unis.example:8888

[cpu]
module = cpu
proc_dir = /proc
interval: 5

[mem]
module = mem

[tunnel]
module = registration_probe
pidfile = /run/tunnel.pid
service_type = http://tunnel.example.org
service_description = a tunnel
service_ttl = 90

[gpu]
module = gpu

[notes]
text = no module here
";

    #[test]
    fn the_sample_file_reads_as_the_original_read_it() {
        let (doc, skipped) = from_ini("blippd.conf", SAMPLE).unwrap();
        let c = &doc["properties"]["configurations"];
        assert_eq!(c["unis_url"], "http://unis.example:8888");
        assert_eq!(c["probe_defaults"]["ms_url"], "http://ms.example:8888");
        assert!(c.get("ms_url").is_none());
        assert_eq!(c["unis_poll_interval"], 30.0);
        assert_eq!(c["use_ssl"], false);
        assert!(
            c["probe_defaults"].get("data_file").is_none(),
            "empty means not set"
        );
        assert!(c.get("ssl_cert").is_none());
        assert_eq!(c["probes"]["net"]["unis_url"], "http://unis.example:8888");
        assert_eq!(c["probes"]["cpu"]["proc_dir"], "/proc");
        assert_eq!(c["probes"]["cpu"]["schedule_params"]["every"], 5.0);
        assert_eq!(c["probes"]["mem"], json!({"probe_module": "mem"}));
        assert_eq!(
            c["probes"]["tunnel"],
            json!({"probe_module": "registration_probe", "pidfile": "/run/tunnel.pid",
                "service_type": "http://tunnel.example.org",
                "service_description": "a tunnel", "service_ttl": 90})
        );
        assert_eq!(c["probes"].as_object().unwrap().len(), 4);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[0].contains("module gpu"), "{skipped:?}");
    }

    #[test]
    fn values_without_their_type_are_refused_in_one_line() {
        let e = from_ini("b.conf", "[main]\nunis_poll_interval = soon\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "b.conf: /main/unis_poll_interval: \"soon\" is invalid: a number"
        );
        let e = from_ini("b.conf", "[main]\nuse_ssl = maybe\n").unwrap_err();
        assert!(e.to_string().contains("/main/use_ssl"), "{e}");
        let e = from_ini("b.conf", "[c]\nmodule = cpu\ninterval = 5s\n").unwrap_err();
        assert!(e.to_string().contains("/c/interval"), "{e}");
    }

    #[test]
    fn ini_syntax_as_configparser_reads_it() {
        let s = sections("; c\n[a]\nKey: v\n  more\nx=1\n[b]\n");
        assert_eq!(
            s,
            vec![
                (
                    "a".to_owned(),
                    vec![
                        ("key".to_owned(), "v\nmore".to_owned()),
                        ("x".to_owned(), "1".to_owned())
                    ]
                ),
                ("b".to_owned(), vec![])
            ]
        );
        assert!(sections("key = before any section\n").is_empty());
    }

    /// Issue 19: a service record the original wrote into UNIS.
    #[test]
    fn a_record_the_original_wrote_is_normalized() {
        let mut doc = json!({"status": "ON", "properties": {"configurations": {
            "unis_poll_interval": "30", "use_ssl": "", "ms_url": "http://ms:8888",
            "probe_defaults": {"schedule_params": {"every": "2"}},
            "probes": {"cpu": {"probe_module": "cpu"}}}}});
        let done = normalize(&mut doc);
        let c = &doc["properties"]["configurations"];
        assert_eq!(c["probe_defaults"]["ms_url"], "http://ms:8888");
        assert_eq!(c["unis_poll_interval"], 30.0);
        assert_eq!(c["probe_defaults"]["schedule_params"]["every"], 2.0);
        assert_eq!(done.len(), 3, "{done:?}");
        super::super::schema::validate("unis", &doc).unwrap();
    }

    #[test]
    fn node_info_sets_the_ms_and_the_slice() {
        let doc = from_node_info(
            "ms_instance=http://ms.example\nauth_uuid=abc-1\nunis_id=x\ngn_address=\n",
        );
        assert_eq!(
            doc["properties"]["configurations"]["probe_defaults"]["ms_url"],
            "http://ms.example"
        );
        assert_eq!(doc["properties"]["geni"]["slice_uuid"], "abc-1");
        assert_eq!(from_node_info("garbage\n\n=x\n"), json!({}));
    }

    #[test]
    fn files_named_must_exist_defaults_need_not() {
        let missing = PathBuf::from("/no/such/blippd.conf");
        let quiet = OriginalFiles {
            ini: Some((missing.clone(), false)),
            node_info: None,
        };
        assert_eq!(read(&quiet).unwrap(), json!({}));
        let named = OriginalFiles {
            ini: Some((missing, true)),
            node_info: None,
        };
        assert!(read(&named).is_err());
    }
}
