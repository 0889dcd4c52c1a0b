//! One probe's resolved configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ConfigError;
use crate::schedule::ScheduleSpec;

/// Where a probe takes its numbers from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// eBPF where this kernel allows it, /proc otherwise.
    #[default]
    Auto,
    /// eBPF, else the probe does not start (blippd tries it again).
    Ebpf,
    /// /proc, /sys and netlink only.
    Proc,
}

impl Mode {
    /// The name the configuration writes it with.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Ebpf => "ebpf",
            Mode::Proc => "proc",
        }
    }
}

/// How a probe's `data_file` is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFileFormat {
    /// One JSON object per sample and line.
    #[default]
    Json,
    /// The original BLiPP's `ts=<µs> event=<type> mid=<MS metadata id>
    /// value=<v>` lines, once the MS has accepted the samples (`subject=`
    /// in place of `mid=` for a probe that reports to no MS).
    Original,
}

/// ON or OFF. As the original read it, `OFF` in any case stops and any
/// other value (`ON`, `RUNNING`, a typo) runs: a service record written by
/// another tool never stops a host by accident.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Status {
    /// Running.
    #[default]
    On,
    /// Stopped.
    Off,
}

impl Status {
    fn parse(value: Option<&str>) -> Status {
        match value {
            Some(s) if s.eq_ignore_ascii_case("off") => Status::Off,
            _ => Status::On,
        }
    }
}

/// Keys every probe has, after `probe_defaults` were applied.
#[derive(Deserialize)]
struct CommonKeys {
    probe_module: String,
    name: Option<String>,
    collection_schedule: Option<String>,
    schedule_params: Option<Value>,
    reporting_params: Option<u32>,
    reporting_interval: Option<f64>,
    reporting_max_samples: Option<u32>,
    aggregate: Option<Value>,
    reporting_tolerance: Option<u32>,
    collection_size: Option<u64>,
    collection_ttl: Option<u64>,
    ms_url: Option<String>,
    data_file: Option<PathBuf>,
    data_file_format: Option<DataFileFormat>,
    status: Option<String>,
    mode: Option<Mode>,
    proc_dir: Option<PathBuf>,
    sys_dir: Option<PathBuf>,
    #[serde(rename = "$schema")]
    _schema: Option<String>,
    /// Everything else: the module's own keys.
    #[serde(flatten)]
    options: Map<String, Value>,
}

/// The keys of [`CommonKeys`] that have a type of their own.
const TYPED_KEYS: [&str; 17] = [
    "probe_module",
    "name",
    "collection_schedule",
    "reporting_params",
    "reporting_interval",
    "reporting_max_samples",
    "reporting_tolerance",
    "collection_size",
    "collection_ttl",
    "ms_url",
    "data_file",
    "data_file_format",
    "status",
    "mode",
    "proc_dir",
    "sys_dir",
    "$schema",
];

/// The first key of `obj` that [`CommonKeys`] refuses on its own, with its
/// value.
fn key_at_fault(obj: &Map<String, Value>) -> Option<(&'static str, &Value)> {
    TYPED_KEYS.iter().find_map(|key| {
        let value = obj.get(*key)?;
        let mut alone = Map::new();
        alone.insert("probe_module".into(), Value::String(String::new()));
        alone.insert((*key).into(), value.clone());
        serde_json::from_value::<CommonKeys>(Value::Object(alone))
            .is_err()
            .then_some((*key, value))
    })
}

/// A probe, fully resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeConfig {
    /// The key under `probes` (or the `name` key).
    pub name: String,
    /// The registry entry that implements it.
    pub module: String,
    /// When it collects.
    pub schedule: ScheduleSpec,
    /// Collections per report.
    pub reporting_params: u32,
    /// A report goes out at least this often, whatever
    /// `reporting_params` says.
    pub reporting_interval: Option<std::time::Duration>,
    /// A report goes out once it holds this many samples.
    pub reporting_max_samples: Option<usize>,
    /// Summaries over windows instead of (or besides) raw samples.
    pub aggregate: Option<std::sync::Arc<crate::report::aggregate::AggregateSpec>>,
    /// Reports kept while the MS is unreachable.
    pub reporting_tolerance: u32,
    /// MS collection size, bytes.
    pub collection_size: u64,
    /// MS collection time to live, seconds.
    pub collection_ttl: u64,
    /// Where its data goes in the MS.
    pub ms_url: Option<String>,
    /// A JSON-lines file that receives its samples.
    pub data_file: Option<PathBuf>,
    /// How `data_file` is written.
    pub data_file_format: DataFileFormat,
    /// OFF: configured but not running.
    pub status: Status,
    /// Whether it may use eBPF; a probe without an eBPF variant ignores it.
    pub mode: Mode,
    /// Root of /proc (fixtures, containers with the host's /proc mounted).
    pub proc_dir: PathBuf,
    /// Root of /sys.
    pub sys_dir: PathBuf,
    /// The module's own keys (with the original's `kwargs` folded in).
    pub options: Map<String, Value>,
    /// The probe's object as configured, for UNIS measurements.
    pub raw: Value,
}

impl ProbeConfig {
    /// Resolves probe `name` from its merged JSON object. `pointer` locates it
    /// in the configuration for error messages.
    pub(super) fn resolve(
        origin: &str,
        pointer: &str,
        name: &str,
        mut obj: Map<String, Value>,
    ) -> Result<Self, ConfigError> {
        let raw = Value::Object(obj.clone());
        // The original passed module arguments in `kwargs`; they are the
        // module's own keys, so fold them in (explicit top-level keys win).
        if let Some(Value::Object(kwargs)) = obj.remove("kwargs") {
            for (k, v) in kwargs {
                obj.entry(k).or_insert(v);
            }
        }
        // The original's shared-resource refs (`[{"ref": ...}]`, which
        // adaptive.simple_avoid plans around) belong to every probe, so
        // `probe_defaults` may hold them; they are not the module's keys
        // (pressure's own `resources` is a list of names).
        if obj
            .get("resources")
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(Value::is_object))
        {
            obj.remove("resources");
        }
        let keys: CommonKeys = match serde_json::from_value(Value::Object(obj.clone())) {
            Ok(keys) => keys,
            Err(e) => {
                // Point at the key at fault rather than at the whole probe.
                return Err(match key_at_fault(&obj) {
                    Some((key, value)) => ConfigError::invalid(
                        origin,
                        &format!("{pointer}/{key}"),
                        value,
                        e.to_string(),
                    ),
                    None => ConfigError::invalid(origin, pointer, &raw, e.to_string()),
                });
            }
        };
        let schedule = ScheduleSpec::from_config(
            keys.collection_schedule
                .as_deref()
                .unwrap_or("builtins.simple"),
            keys.schedule_params.as_ref(),
        )
        .map_err(|e| {
            ConfigError::invalid(
                origin,
                &format!("{pointer}/{}", e.key),
                &e.value,
                e.expected,
            )
        })?;
        let aggregate = match &keys.aggregate {
            None | Some(Value::Null) => None,
            Some(v) => Some(std::sync::Arc::new(
                crate::report::aggregate::AggregateSpec::from_json(v).map_err(|e| {
                    ConfigError::invalid(
                        origin,
                        &format!("{pointer}/aggregate/{}", e.key),
                        &e.value,
                        e.expected,
                    )
                })?,
            )),
        };
        let reporting_interval = match keys.reporting_interval {
            None => None,
            Some(s)
                if s.is_finite()
                    && (crate::limits::MIN_INTERVAL..=crate::limits::MAX_INTERVAL).contains(&s) =>
            {
                Some(std::time::Duration::from_secs_f64(s))
            }
            Some(s) => {
                return Err(ConfigError::invalid(
                    origin,
                    &format!("{pointer}/reporting_interval"),
                    &serde_json::json!(s),
                    format!(
                        "seconds from {} to {}",
                        crate::limits::MIN_INTERVAL,
                        crate::limits::MAX_INTERVAL
                    ),
                ));
            }
        };
        Ok(ProbeConfig {
            name: keys.name.unwrap_or_else(|| name.to_owned()),
            module: keys.probe_module,
            schedule,
            reporting_params: keys.reporting_params.unwrap_or(1).max(1),
            reporting_interval,
            reporting_max_samples: keys
                .reporting_max_samples
                .map(|n| usize::try_from(n.max(1)).unwrap_or(usize::MAX)),
            aggregate,
            reporting_tolerance: keys.reporting_tolerance.unwrap_or(10),
            collection_size: keys.collection_size.unwrap_or(10_000_000),
            collection_ttl: keys.collection_ttl.unwrap_or(1_500_000),
            ms_url: keys.ms_url,
            data_file: keys.data_file,
            data_file_format: keys.data_file_format.unwrap_or_default(),
            status: Status::parse(keys.status.as_deref()),
            mode: keys.mode.unwrap_or_default(),
            proc_dir: keys.proc_dir.unwrap_or_else(|| PathBuf::from("/proc")),
            sys_dir: keys.sys_dir.unwrap_or_else(|| PathBuf::from("/sys")),
            options: keys.options,
            raw,
        })
    }

    /// Parses the module's own keys into its options type, naming this probe
    /// on failure.
    pub fn options<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let value = Value::Object(self.options.clone());
        let pointer = format!("/properties/configurations/probes/{}", self.name);
        serde_json::from_value(value.clone()).map_err(|e| {
            // Point at the key at fault (`pid: 1e20`) rather than at the
            // whole probe, as for the common keys.
            match self.option_at_fault::<T>() {
                Some((key, value, why)) => {
                    ConfigError::invalid("configuration", &format!("{pointer}/{key}"), value, why)
                }
                None => ConfigError::invalid("configuration", &pointer, &value, e.to_string()),
            }
        })
    }

    /// The first of the module's own keys that `T` refuses on its own, its
    /// value and why; a key refused only because others are missing is
    /// not at fault.
    fn option_at_fault<T: serde::de::DeserializeOwned>(&self) -> Option<(&str, &Value, String)> {
        self.options.iter().find_map(|(key, value)| {
            let mut alone = Map::new();
            alone.insert(key.clone(), value.clone());
            match serde_json::from_value::<T>(Value::Object(alone)) {
                Err(e) if !e.to_string().starts_with("missing field") => {
                    Some((key.as_str(), value, e.to_string()))
                }
                _ => None,
            }
        })
    }
}

pub(super) fn parse_status(value: Option<&str>) -> Status {
    Status::parse(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Issue 19: anything but OFF means ON, as in the original; the schema
    /// takes any string.
    #[test]
    fn only_off_stops() {
        for off in ["OFF", "off", "Off"] {
            assert_eq!(parse_status(Some(off)), Status::Off, "{off}");
        }
        for on in ["ON", "on", "RUNNING", "", "OFFLINE"] {
            assert_eq!(parse_status(Some(on)), Status::On, "{on}");
        }
        assert_eq!(parse_status(None), Status::On);
        let doc = json!({"properties": {"configurations": {"probes": {
            "c": {"probe_module": "cpu", "status": "RUNNING", "schedule_params": {"every": 1}}}}}});
        crate::config::schema::validate("f.json", &doc).unwrap();
        let c = crate::config::load::resolve(doc).unwrap();
        assert_eq!(c.probes[0].status, Status::On);
    }

    #[test]
    fn a_mode_is_written_and_read_by_its_name() {
        for mode in [Mode::Auto, Mode::Ebpf, Mode::Proc] {
            assert_eq!(serde_json::to_value(mode).unwrap(), json!(mode.as_str()));
            let read: Mode = serde_json::from_value(json!(mode.as_str())).unwrap();
            assert_eq!(read, mode);
        }
    }

    /// Issue 16: `reporting_params` = 2^64 printed the whole probe object.
    #[test]
    fn a_bad_common_key_is_named_alone() {
        let Value::Object(obj) = json!({"probe_module": "cpu", "reporting_params": 18_446_744_073_709_551_616.0_f64, "percpu": true})
        else {
            unreachable!()
        };
        let e = ProbeConfig::resolve("f.json", "/p/c", "c", obj)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "f.json: /p/c/reporting_params: 1.8446744073709552e+19 is invalid: invalid type: floating point `1.8446744073709552e+19`, expected u32"
        );
    }

    /// Issue 16: `pid: 1e20` named the whole probe.
    #[test]
    fn a_bad_own_key_is_named_alone() {
        #[derive(Deserialize, Debug)]
        #[expect(dead_code, reason = "only parsed")]
        struct Own {
            regex: String,
            pid: Option<i32>,
        }
        let Value::Object(obj) = json!({"probe_module": "process", "schedule_params": {"every": 1}, "regex": "x", "pid": 1e20})
        else {
            unreachable!()
        };
        let p = ProbeConfig::resolve("f.json", "/p/c", "c", obj).unwrap();
        let e = p.options::<Own>().unwrap_err().to_string();
        assert_eq!(
            e,
            "configuration: /properties/configurations/probes/c/pid: 1e+20 is invalid: invalid type: floating point `1e+20`, expected i32"
        );
        let Value::Object(obj) =
            json!({"probe_module": "process", "schedule_params": {"every": 1}, "pid": 1})
        else {
            unreachable!()
        };
        let p = ProbeConfig::resolve("f.json", "/p/c", "c", obj).unwrap();
        let e = p.options::<Own>().unwrap_err().to_string();
        assert!(
            e.contains("/probes/c: {\"pid\":1} is invalid: missing field `regex`"),
            "{e}"
        );
    }
}
