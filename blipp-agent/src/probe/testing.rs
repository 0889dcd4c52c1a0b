//! Probes built the way blippd builds them, on a fake /proc, for tests.

use std::path::Path;

use serde_json::{Value, json};

use super::{BuildContext, Built, Probe, ProbeError};
use crate::config::{self, Overrides};
use crate::sample::{Name, Sample, Timestamp, Value as SampleValue};
use crate::source::ebpf::KernelAccess;

/// Builds probe `module` with its own `options`, in mode proc, reading
/// `proc_dir`, through the real configuration path (schema included).
pub fn build(module: &str, options: &Value, proc_dir: &Path) -> Box<dyn Probe> {
    try_build(module, options, proc_dir)
        .expect("the probe builds")
        .probe
}

/// [`build`], returning the configuration's or the probe's error.
pub fn try_build(module: &str, options: &Value, proc_dir: &Path) -> Result<Built, ProbeError> {
    let overrides = Overrides {
        proc_dir: Some(proc_dir.to_owned()),
        ..Overrides::default()
    };
    build_with(module, options, &overrides)
}

/// [`try_build`] for a probe that reads /sys: `sys_dir` is its root.
pub fn try_build_sys(module: &str, options: &Value, sys_dir: &Path) -> Result<Built, ProbeError> {
    let overrides = Overrides {
        sys_dir: Some(sys_dir.to_owned()),
        ..Overrides::default()
    };
    build_with(module, options, &overrides)
}

/// Writes a configuration of that one probe and builds it as blippd
/// would, with `overrides` as its command line.
fn build_with(module: &str, options: &Value, overrides: &Overrides) -> Result<Built, ProbeError> {
    let mut probe = json!({ "probe_module": module, "mode": "proc" });
    for (k, v) in options.as_object().expect("options are an object") {
        probe[k] = v.clone();
    }
    let doc = json!({ "properties": { "configurations": { "probes": { module: probe } } } });
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("blipp.json");
    std::fs::write(&path, doc.to_string()).expect("configuration written");
    let config = config::load(Some(&path), overrides)?;
    let mut kernel = KernelAccess::Unavailable("tests run in mode proc".to_owned());
    let mut ctx = BuildContext {
        kernel: &mut kernel,
        node: Name::from("node"),
        costs: Default::default(),
    };
    super::build(&config.probes[0], &mut ctx)
}

/// The configuration of probe `module` with its own `options`, as
/// blippd loads it (schema included), or the error that loading gives,
/// for probes whose option parsing is tested without building them.
pub fn probe_config(
    module: &str,
    options: &Value,
) -> Result<config::ProbeConfig, config::ConfigError> {
    let mut probe = json!({ "probe_module": module });
    for (k, v) in options.as_object().expect("options are an object") {
        probe[k] = v.clone();
    }
    let doc = json!({ "properties": { "configurations": { "probes": { module: probe } } } });
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("blipp.json");
    std::fs::write(&path, doc.to_string()).expect("configuration written");
    let config = config::load(Some(&path), &Overrides::default())?;
    Ok(config.probes.into_iter().next().expect("one probe"))
}

/// One collection at `seconds` after an arbitrary epoch.
pub fn collect(probe: &mut dyn Probe, seconds: f64) -> Vec<Sample> {
    let mut out = Vec::new();
    let ts = Timestamp(1_700_000_000_000_000 + (seconds * 1e6) as u64);
    probe.collect(ts, &mut out).expect("collection succeeds");
    out
}

/// The sample of `subject` and `event_type`, which must be unique.
pub fn find<'a>(samples: &'a [Sample], subject: &str, event_type: &str) -> Option<&'a Sample> {
    let mut it = samples
        .iter()
        .filter(|s| &*s.subject == subject && &*s.event_type == event_type);
    let first = it.next();
    assert!(it.next().is_none(), "two samples of {subject} {event_type}");
    first
}

/// The integer value of a sample that must exist.
pub fn int(samples: &[Sample], subject: &str, event_type: &str) -> u64 {
    match find(samples, subject, event_type).map(|s| &s.value) {
        Some(SampleValue::Int(v)) => *v,
        other => panic!("{subject} {event_type}: {other:?}"),
    }
}

/// The real value of a sample that must exist.
pub fn float(samples: &[Sample], subject: &str, event_type: &str) -> f64 {
    match find(samples, subject, event_type).map(|s| &s.value) {
        Some(SampleValue::Float(v)) => *v,
        other => panic!("{subject} {event_type}: {other:?}"),
    }
}

/// Writes `files` (path relative to the root, contents) under `root`.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("fixture directory");
        }
        std::fs::write(path, text).expect("fixture file");
    }
}
