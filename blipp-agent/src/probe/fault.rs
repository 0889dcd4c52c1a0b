//! Why a probe could not be built, sorted by what fixes it: a fault of its
//! configuration stays until the configuration changes, so `--check`
//! refuses it and start-up reports it once; a fault of its environment (a
//! sysfs file it needs, eBPF) may pass, so blippd tries again later.

use super::ProbeError;
use crate::config::{ConfigError, ProbeConfig};

/// A probe that could not be built.
#[derive(Debug)]
pub enum Fault {
    /// Its configuration is wrong: the refusal line of `--check` and
    /// `--strict`, naming the file, the JSON pointer, the value and what
    /// was expected.
    Config(ConfigError),
    /// What it needs from the host failed.
    Environment {
        /// The probe's name.
        probe: String,
        /// Why.
        error: ProbeError,
    },
}

impl Fault {
    /// Sorts `error`, which building `probe` gave, naming `origin` (the
    /// configuration file) in a configuration fault.
    pub fn of(probe: &ProbeConfig, error: ProbeError, origin: &str) -> Self {
        match error {
            ProbeError::Config(e) => Fault::Config(e.with_origin(origin)),
            ProbeError::UnknownModule(module) => Fault::Config(ConfigError::invalid(
                origin,
                &format!(
                    "/properties/configurations/probes/{}/probe_module",
                    probe.name
                ),
                &serde_json::Value::String(module),
                "a probe module blipp has (blippcmd probes)",
            )),
            error => Fault::Environment {
                probe: probe.name.clone(),
                error,
            },
        }
    }

    /// Whether only a new configuration can fix it.
    pub fn is_config(&self) -> bool {
        matches!(self, Fault::Config(_))
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Config(e) => write!(f, "{e}"),
            Fault::Environment { probe, error } => write!(f, "probe {probe}: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::read::FileError;

    fn probe() -> ProbeConfig {
        crate::config::load(None, &crate::config::Overrides::default())
            .unwrap()
            .probes
            .remove(0)
    }

    #[test]
    fn configuration_faults_name_the_file_and_others_the_probe() {
        let p = probe();
        let e = ConfigError::invalid("configuration", "/x", &serde_json::json!(1), "2");
        let f = Fault::of(&p, e.into(), "/etc/blipp.json");
        assert!(f.is_config());
        assert_eq!(f.to_string(), "/etc/blipp.json: /x: 1 is invalid: 2");
        let f = Fault::of(&p, ProbeError::UnknownModule("gpu".into()), "f.json");
        assert!(f.is_config());
        assert!(f.to_string().starts_with(&format!(
            "f.json: /properties/configurations/probes/{}/probe_module: \"gpu\" is invalid",
            p.name
        )));
        let io = FileError::Read {
            path: "/sys/devices/system/node/online".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        let f = Fault::of(&p, io.into(), "f.json");
        assert!(!f.is_config());
        assert!(
            f.to_string().starts_with(&format!("probe {}: ", p.name)),
            "{f}"
        );
    }
}
