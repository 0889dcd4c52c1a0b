//! Reading, validating and merging configuration sources.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::original::{self, OriginalFiles};
use super::policy::Policy;
use super::preset;
use super::probe::parse_status;
use super::record;
use super::{
    Config, ConfigError, Mode, ProbeConfig, Settings, Tls, commands, merge::merge, schema,
};
use crate::limits::CONFIG_FILE_MAX;

const DEFAULTS: &str = include_str!("default.json");

/// Where samples wait on disk while UNIS or the MS cannot take them.
pub const DEFAULT_SPOOL_DIR: &str = "/var/lib/blipp/spool";
/// How much the spool may hold, MB; beyond it the oldest samples go.
pub const DEFAULT_SPOOL_LIMIT_MB: f64 = 64.0;

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
    /// The original BLiPP's INI file and node.info to read (`--ini`,
    /// `--node-info`; blippd's defaults are the original's paths).
    pub original: OriginalFiles,
}

impl Overrides {
    fn to_json(&self) -> Value {
        let mut configurations = Map::new();
        if let Some(url) = &self.unis_url {
            configurations.insert("unis_url".into(), Value::String(url.clone()));
        }
        let mut defaults = Map::new();
        if let Some(mode) = self.mode {
            defaults.insert("mode".into(), Value::String(mode.as_str().into()));
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

/// Reads a configuration file: a regular file of at most
/// [`CONFIG_FILE_MAX`] bytes. Every command that reads one (start-up,
/// `--check`, `blippcmd check`, `blippcmd reload`, SIGHUP) comes through
/// here, so that a file one of them accepts is one the others accept, and
/// one that the eBPF handover can carry.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    crate::bounded::read_to_string(path, CONFIG_FILE_MAX).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// How messages name the local configuration: its file, else the
/// built-in defaults.
pub fn origin(file: Option<&Path>) -> String {
    file.map_or_else(
        || "built-in defaults".to_owned(),
        |path| path.display().to_string(),
    )
}

fn parse_json(path: &Path, text: &str) -> Result<Value, ConfigError> {
    serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// The configuration this host has without UNIS: built-in defaults <
/// file < command line, validated.
#[derive(Clone, Debug)]
pub struct Local {
    /// The merged service object.
    pub doc: Value,
    /// Its probes are the built-in set (neither the file nor the command
    /// line lists probes): a probe list from UNIS replaces them.
    pub builtin_probes: bool,
    /// What the file and the command line say, without the built-in
    /// defaults: what `--override` puts over UNIS.
    pub own: Value,
    /// The file's text as read: what a re-executed blippd takes over, so
    /// that it runs the configuration checked here (see
    /// [`load_checked`]).
    pub file_text: Option<String>,
    /// What a remote configuration may change beyond steering (the
    /// file's `trust` section).
    pub policy: Policy,
}

/// Where the local configuration comes from: what `blippcmd reload`
/// reads again.
#[derive(Clone, Debug, Default)]
pub struct LocalSource {
    /// The file (`-c`), if any.
    pub file: Option<PathBuf>,
    /// The command line's keys.
    pub overrides: Overrides,
}

impl LocalSource {
    /// Reads and merges the local sources again.
    pub fn load(&self) -> Result<Local, ConfigError> {
        load_local(self.file.as_deref(), &self.overrides)
    }
}

/// Loads the configuration: built-in defaults < `file` < `overrides`.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    resolve(load_local(file, overrides)?.doc)
}

/// Reads and merges the local sources: built-in defaults < `file` <
/// `overrides`.
///
/// The file is validated on its own first, so that error pointers refer to
/// the file as written. Built-in probes apply only when neither the file nor
/// the command line names any: a file that lists probes gets exactly those.
pub fn load_local(file: Option<&Path>, overrides: &Overrides) -> Result<Local, ConfigError> {
    let file = match file {
        Some(path) => Some((path, read_text(path)?)),
        None => None,
    };
    merge_local(file, overrides, true)
}

/// [`load_local`] from the text of `file` as the image of blippd before a
/// re-execution read and checked it: the same document, not checked
/// against the schema again. Compiling the schema is the largest part of
/// what blippd's start-up costs in memory, and the re-execution is there to
/// leave start-up costs behind.
pub fn load_checked(
    file: Option<(&Path, String)>,
    overrides: &Overrides,
) -> Result<Local, ConfigError> {
    merge_local(file, overrides, false)
}

fn merge_local(
    file: Option<(&Path, String)>,
    overrides: &Overrides,
    check: bool,
) -> Result<Local, ConfigError> {
    let mut doc = builtin_defaults();
    let mut own = Value::Object(Map::new());
    let mut builtin_probes = true;
    // The original's INI file and node.info, above the built-in defaults
    // and below the file, as in the original.
    let original = original::read(&overrides.original)?;
    if original
        .pointer("/properties/configurations/probes")
        .is_some()
    {
        if let Some(obj) = doc
            .pointer_mut("/properties/configurations")
            .and_then(Value::as_object_mut)
        {
            obj.remove("probes");
        }
        builtin_probes = false;
    }
    merge(&mut own, original.clone());
    merge(&mut doc, original);
    let mut file_text = None;
    let origin = origin(file.as_ref().map(|(path, _)| *path));
    if let Some((path, text)) = file {
        let (mut file_doc, measurement) = record::as_service(&origin, parse_json(path, &text)?)?;
        preset::expand(&mut file_doc);
        if let Some(probe) = measurement {
            tracing::info!(
                file = %origin,
                probe,
                "the file is a UNIS measurement record: running it as that one probe"
            );
        }
        file_text = Some(text);
        if check {
            schema::validate(&origin, &file_doc)?;
        }
        // Checked here too, where the file's name is known: the error
        // names the file the operator must fix.
        if let Some(conf) = file_doc
            .pointer("/properties/configurations")
            .and_then(Value::as_object)
        {
            if conf.contains_key("command_user") {
                commands::user(&origin, conf)?;
            }
            commands::limits(&origin, conf)?;
        }
        if file_doc
            .pointer("/properties/configurations/probes")
            .is_some()
            && let Some(obj) = doc
                .pointer_mut("/properties/configurations")
                .and_then(Value::as_object_mut)
        {
            obj.remove("probes");
            builtin_probes = false;
        }
        merge(&mut own, file_doc.clone());
        merge(&mut doc, file_doc);
    }
    merge(&mut own, overrides.to_json());
    merge(&mut doc, overrides.to_json());
    if check {
        schema::validate("merged configuration", &doc)?;
        // What the schema cannot say (a schedule's low above its high) is
        // checked when the probes are resolved: here, so that the message
        // names the file, as the schema's do.
        resolve_in(doc.clone(), &origin)?;
    }
    let policy = Policy::from_local(&origin, &doc)?;
    Ok(Local {
        doc,
        builtin_probes,
        own,
        file_text,
        policy,
    })
}

/// One probe's entry with the document's `probe_defaults` applied.
pub(crate) fn resolve_probe(
    doc: &Value,
    origin: &str,
    pointer: &str,
    name: &str,
    entry: &Value,
) -> Result<ProbeConfig, ConfigError> {
    let Value::Object(entry) = entry else {
        return Err(ConfigError::invalid(
            origin,
            pointer,
            entry,
            "expected an object",
        ));
    };
    let defaults = doc
        .pointer("/properties/configurations/probe_defaults")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut entry = entry.clone();
    preset::apply(&mut entry, Some(&defaults));
    let mut merged = Value::Object(defaults);
    merge(&mut merged, Value::Object(entry));
    let Value::Object(merged) = merged else {
        unreachable!("merging objects gives an object")
    };
    ProbeConfig::resolve(origin, pointer, name, merged)
}

/// Who wins where the local configuration and the service in UNIS
/// disagree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precedence {
    /// UNIS (the original's order: defaults < file < command line < UNIS).
    #[default]
    Unis,
    /// The local configuration (`--override`).
    Local,
}

/// The configuration with the service object `service` from UNIS merged
/// in, as it is: only for a service that [`crate::trust::merge_service`]
/// validated and screened with the local policy. The result is validated
/// (a bad value is reported with `origin` and its pointer). A probe list in
/// UNIS replaces the built-in probe set, as a file's does.
pub(crate) fn merge_service(
    local: &Local,
    service: &Value,
    origin: &str,
    precedence: Precedence,
) -> Result<Value, ConfigError> {
    let mut remote = service.clone();
    if let Value::Object(m) = &mut remote {
        // The server's: a stale `ts` written back would date the service.
        m.remove("ts");
    }
    // Defaults < file < command line < UNIS, or with `--override`
    // defaults < UNIS < file < command line.
    let mut doc = match precedence {
        Precedence::Unis => local.doc.clone(),
        Precedence::Local => builtin_defaults(),
    };
    if local.builtin_probes
        && remote
            .pointer("/properties/configurations/probes")
            .is_some()
        && let Some(obj) = doc
            .pointer_mut("/properties/configurations")
            .and_then(Value::as_object_mut)
    {
        obj.remove("probes");
    }
    merge(&mut doc, remote);
    if precedence == Precedence::Local {
        merge(&mut doc, local.own.clone());
    }
    schema::validate(
        &format!("{origin} merged with the local configuration"),
        &doc,
    )?;
    Ok(doc)
}

impl Config {
    /// Adds a probe from a measurement's `configuration` (`-e use`: run
    /// measurements made by others), with this configuration's
    /// `probe_defaults`. `origin` names the measurement in errors.
    pub fn adopt(
        &mut self,
        name: &str,
        configuration: &Value,
        origin: &str,
    ) -> Result<(), ConfigError> {
        let mut probes = Map::new();
        probes.insert(name.to_owned(), configuration.clone());
        let wrapper =
            serde_json::json!({ "properties": { "configurations": { "probes": probes } } });
        schema::validate(origin, &wrapper)?;
        let probe = resolve_probe(&self.service, origin, "/configuration", name, configuration)?;
        self.probes.push(probe);
        Ok(())
    }
}

/// Turns a validated service object into a [`Config`].
pub fn resolve(doc: Value) -> Result<Config, ConfigError> {
    resolve_in(doc, "configuration")
}

/// [`resolve`], naming `origin` in errors.
fn resolve_in(doc: Value, origin: &str) -> Result<Config, ConfigError> {
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
    let defaults_dir = |key: &str, default: &str| {
        conf.get("probe_defaults")
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .map_or_else(|| PathBuf::from(default), PathBuf::from)
    };
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
        spool_dir: str_of("spool_dir")
            .map_or_else(|| PathBuf::from(DEFAULT_SPOOL_DIR), PathBuf::from),
        // Whole bytes: the limit is a size, any fraction of a byte is noise.
        spool_limit_bytes: (num_of("spool_limit_mb", DEFAULT_SPOOL_LIMIT_MB) * 1e6) as u64,
        proc_dir: defaults_dir("proc_dir", "/proc"),
        sys_dir: defaults_dir("sys_dir", "/sys"),
        command_user: commands::user(origin, conf)?,
        command_limits: commands::limits(origin, conf)?,
        remote_write: super::remote_write::parse(origin, conf)?,
        prometheus: crate::report::prometheus::config::parse(origin, conf)?,
    };
    let mut probes = Vec::new();
    if let Some(Value::Object(entries)) = conf.get("probes") {
        for (name, entry) in entries {
            let pointer = format!("/properties/configurations/probes/{name}");
            probes.push(resolve_probe(&doc, origin, &pointer, name, entry)?);
        }
    }
    Ok(Config {
        status: parse_status(doc.get("status").and_then(Value::as_str)),
        service: doc,
        settings,
        probes,
        refused: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Status;
    use serde_json::json;

    fn local(file: &Value) -> Local {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blipp.json");
        std::fs::write(&path, file.to_string()).unwrap();
        load_local(Some(&path), &Overrides::default()).unwrap()
    }

    fn probe_names(doc: &Value) -> Vec<String> {
        resolve(doc.clone())
            .unwrap()
            .probes
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }

    #[test]
    fn unis_wins_unless_override_and_only_over_what_the_file_says() {
        let file = json!({"properties": {"configurations": {"unis_max_backoff": 60,
            "probes": {"mem": {"probe_module": "mem", "status": "ON"}}}}});
        let unis = json!({"id": "s", "ts": 5, "serviceType": "ps:tools:blipp", "status": "OFF",
            "properties": {"configurations": {"unis_poll_interval": 30, "unis_max_backoff": 90,
            "probes": {"mem": {"probe_module": "mem", "status": "OFF"}, "cpu": {"probe_module": "cpu"}}}}});
        let l = local(&file);
        let merged = merge_service(&l, &unis, "UNIS service s", Precedence::Unis).unwrap();
        let c = resolve(merged.clone()).unwrap();
        assert_eq!(c.status, Status::Off);
        assert_eq!(c.settings.unis_max_backoff, 90.0);
        assert_eq!(c.settings.unis_poll_interval, 30.0);
        assert_eq!(
            c.probes.iter().find(|p| p.name == "mem").unwrap().status,
            Status::Off
        );
        assert!(merged.get("ts").is_none(), "the server's ts is not carried");

        let merged = merge_service(&l, &unis, "UNIS service s", Precedence::Local).unwrap();
        let c = resolve(merged).unwrap();
        assert_eq!(c.settings.unis_max_backoff, 60.0, "the file's value wins");
        assert_eq!(
            c.settings.unis_poll_interval, 30.0,
            "a built-in default does not beat UNIS"
        );
        assert_eq!(
            c.probes.iter().find(|p| p.name == "mem").unwrap().status,
            Status::On
        );
        assert_eq!(
            c.status,
            Status::Off,
            "what the file does not set comes from UNIS"
        );
    }

    /// A re-executed blippd merges the text its first image read into the
    /// same document, without the schema (which the first image applied).
    #[test]
    fn checked_text_merges_as_the_file_did() {
        let file = json!({"properties": {"configurations": {"unis_max_backoff": 60,
            "probes": {"mem": {"probe_module": "mem", "schedule_params": {"every": 0.1}}}}}});
        let overrides = Overrides {
            mode: Some(Mode::Proc),
            ..Overrides::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blipp.json");
        std::fs::write(&path, file.to_string()).unwrap();
        let read = load_local(Some(&path), &overrides).unwrap();
        let text = read.file_text.clone().unwrap();
        assert_eq!(text, file.to_string());
        let checked = load_checked(Some((&path, text)), &overrides).unwrap();
        assert_eq!(checked.doc, read.doc);
        assert_eq!(checked.own, read.own);
        assert_eq!(checked.builtin_probes, read.builtin_probes);
        assert_eq!(checked.file_text, read.file_text);
        let none = load_checked(None, &overrides).unwrap();
        assert_eq!(none.doc, load_local(None, &overrides).unwrap().doc);
        assert!(none.file_text.is_none());
        // Not checked again: what the schema refuses goes through.
        let bad = r#"{"properties": {"configurations": {"unis_poll_interval": "often"}}}"#;
        std::fs::write(&path, bad).unwrap();
        assert!(load_local(Some(&path), &overrides).is_err());
        assert!(load_checked(Some((&path, bad.to_owned())), &overrides).is_ok());
    }

    /// Issue 16: a configuration that is not a regular file, or is longer
    /// than the limit, is refused by its reader before anything parses it.
    #[test]
    fn endless_and_oversized_files_are_refused_naming_the_limit() {
        let e = load_local(Some(Path::new("/dev/zero")), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/dev/zero: cannot read: not a regular file but a character device"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        let mut text = String::from(r#"{"x": ""#);
        text.push_str(&" ".repeat(CONFIG_FILE_MAX as usize));
        text.push_str(r#""}"#);
        std::fs::write(&path, &text).unwrap();
        let e = load_local(Some(&path), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("cannot read: longer than the limit of 4 MiB"),
            "{e}"
        );
    }

    #[test]
    fn a_probe_list_in_unis_replaces_the_built_in_one() {
        let l = load_local(None, &Overrides::default()).unwrap();
        assert!(l.builtin_probes);
        let unis = json!({"serviceType": "ps:tools:blipp",
            "properties": {"configurations": {"probes": {"cpu": {"probe_module": "cpu"}}}}});
        let merged = merge_service(&l, &unis, "UNIS service", Precedence::Unis).unwrap();
        assert_eq!(probe_names(&merged), ["cpu"]);
        // A file's probes are the operator's: they stay next to UNIS's.
        let l = local(
            &json!({"properties": {"configurations": {"probes": {"mem": {"probe_module": "mem"}}}}}),
        );
        let merged = merge_service(&l, &unis, "UNIS service", Precedence::Unis).unwrap();
        assert_eq!(probe_names(&merged), ["cpu", "mem"]);
    }

    #[test]
    fn adopted_measurements_get_the_probe_defaults() {
        let mut c = load(None, &Overrides::default()).unwrap();
        let n = c.probes.len();
        c.adopt(
            "theirs",
            &json!({"probe_module": "mem"}),
            "UNIS measurement m",
        )
        .unwrap();
        assert_eq!(c.probes.len(), n + 1);
        let p = c.probes.last().unwrap();
        assert_eq!(p.collection_size, 10_000_000, "from probe_defaults");
        let e = c
            .adopt(
                "bad",
                &json!({"probe_module": "gpu"}),
                "UNIS measurement m2",
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("UNIS measurement m2"), "{e}");
    }
}
