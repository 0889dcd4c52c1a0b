//! `blippd --check`, `blippcmd check` and `blippd --strict`: every probe
//! of a configuration built as start-up builds it, but not started, so
//! that what a probe refuses when it is built is refused before blippd
//! runs, with the line start-up would give.
//!
//! Nothing is started: no eBPF object is loaded (the probes that could use
//! one are built as on a host without eBPF), no command runs, no thread
//! starts and no file is created; the probes read at most the files they
//! read when built (a process's `/proc/stat`, the NUMA nodes). What fails
//! because of the host (an unreadable sysfs file, eBPF) is not the
//! configuration's fault: start-up tries it again later, and it is not
//! refused here.

use super::{BuildContext, Fault, build};
use crate::config::{Config, ConfigError};
use crate::sample::Name;
use crate::source::ebpf::KernelAccess;

/// The configuration faults of every probe of `config`, whatever its
/// status (an OFF probe is one `blippcmd probe start` away from running),
/// in name order, naming `origin` (the file).
pub fn check(config: &Config, origin: &str) -> Vec<ConfigError> {
    let mut kernel = KernelAccess::Unavailable("--check loads no eBPF program".to_owned());
    // The probes' own log lines (fallbacks, the command they would run)
    // belong to the run, not to the check.
    tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
        let mut ctx = BuildContext {
            kernel: &mut kernel,
            node: Name::from("node"),
            costs: super::cost::CostBoard::default(),
        };
        config
            .probes
            .iter()
            .filter_map(|p| match build(p, &mut ctx) {
                Ok(_) => None,
                Err(e) => match Fault::of(p, e, origin) {
                    Fault::Config(e) => Some(e),
                    Fault::Environment { .. } => None,
                },
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(probes: serde_json::Value) -> Config {
        let doc = json!({"properties": {"configurations": {
            "probe_defaults": {"schedule_params": {"every": 5}}, "probes": probes}}});
        crate::config::resolve(doc).unwrap()
    }

    #[test]
    fn every_faulty_probe_is_refused_once_and_the_host_is_not() {
        let faults = check(
            &config(json!({
                "a": {"probe_module": "cmd", "command": "true", "regex": "(", "eventTypes": {"x": "e"}},
                "b": {"probe_module": "mem"},
                "c": {"probe_module": "process", "pid": 0, "status": "OFF"},
                "d": {"probe_module": "numa", "sys_dir": "/nonexistent"},
                "e": {"probe_module": "disk", "mode": "ebpf"},
                "f": {"probe_module": "cmd", "command": "true", "eventTypes": {"g0": "e"},
                      "regex": (0..40).map(|i| format!("(?P<g{i}>a)")).collect::<String>()},
            })),
            "f.json",
        );
        let lines: Vec<String> = faults.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "f.json: /properties/configurations/probes/a/regex: \"(\" is invalid: a regular expression: unclosed group at character 1",
                "f.json: /properties/configurations/probes/c/pid: 0 is invalid: expected a pid greater than 0",
                "f.json: /properties/configurations/probes/f/regex: \"(?P<g0>a)(?P<g1>a)(?P<g2>a)(?P<g3>a)(?P<g4>a)(?P<g5>a)(?P<g6>a)(?P<g7>a)(?P<g8>a)(?P<g9>a)(?P<g10>a)(?P<g11>a)(?P<g1... is invalid: a regular expression with at most 32 groups, not 40: each group costs time at every match",
            ]
        );
    }
}
