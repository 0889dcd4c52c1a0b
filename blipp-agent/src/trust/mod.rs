//! Screening configurations that come from the network (the service record
//! in UNIS, measurements adopted with `-e use`) with the local trust policy
//! ([`crate::config::policy`]) before any of it takes effect.
//!
//! What a remote configuration may change freely: schedules, reporting,
//! status, and the keys of built-in probes that name no program, file or
//! directory. Everything else passes only when it equals what the local
//! configuration already says, or when the local policy allows it:
//!
//! - a key naming a file or directory (`data_file`, `proc_dir`, `sys_dir`,
//!   `spool_dir`, `ssl_*`, a probe module's own, such as `logfile` or
//!   `pidfile`): under one of `trust.paths`;
//! - a key naming where data goes (`unis_url`, `ms_url`): under one of
//!   `trust.urls` or the local file's own URLs;
//! - anything that changes what a program probe runs (its module, its
//!   command, any `$key` value, its environment, or a `probe_defaults` key
//!   it reads): the resulting invocation, resolved to the file that would be
//!   executed, must match `trust.programs`;
//! - the policy itself, how commands are contained, and `prometheus`
//!   (remote-write URLs, their credential files): never.
//!
//! A refused part is left out, everything else of the same update applies.
//! The check of program probes is made on the configuration that would
//! result, so no way of reaching a program's argument vector (a common
//! key used as a `$key` word, a default) escapes it.

use serde_json::{Map, Value};

use crate::config::policy::{Policy, Refusal};
use crate::config::{self, ConfigError, Local, Precedence};
use crate::probe::{self, Reach};

/// Keys of every probe that name files or directories.
const PROBE_PATHS: [&str; 3] = ["data_file", "proc_dir", "sys_dir"];
/// Keys of every probe that name destinations.
const PROBE_URLS: [&str; 1] = ["ms_url"];

/// What one key of a remote configuration can make blippd do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyReach {
    /// Steers only (when, how often, what is reported, status).
    Steer,
    /// Names a file or directory.
    Path,
    /// Names where data goes.
    Url,
    /// Only the local file decides it.
    LocalOnly,
}

/// How a service-wide key is screened.
fn setting_reach(key: &str) -> KeyReach {
    match key {
        "unis_poll_interval" | "unis_max_backoff" | "spool_limit_mb" => KeyReach::Steer,
        "ssl_cert" | "ssl_key" | "ssl_cafile" | "config_file" | "spool_dir" => KeyReach::Path,
        "unis_url" => KeyReach::Url,
        // Files to read, addresses to listen on, credentials: as the
        // policy itself, never from the network.
        "prometheus" => KeyReach::LocalOnly,
        // `use_ssl`, the policy and command containment
        // ([`crate::config::policy::LOCAL_ONLY`]), and whatever this
        // version does not know.
        _ => KeyReach::LocalOnly,
    }
}

/// How a probe's key is screened, for a probe of module `reach`
/// (`None`: `probe_defaults`, which apply to every module).
fn probe_key_reach(reach: Option<Reach>, key: &str) -> KeyReach {
    if PROBE_PATHS.contains(&key) {
        return KeyReach::Path;
    }
    if PROBE_URLS.contains(&key) {
        return KeyReach::Url;
    }
    match reach {
        Some(Reach::Keys { paths, .. }) if paths.contains(&key) => KeyReach::Path,
        Some(Reach::Keys { urls, .. }) if urls.contains(&key) => KeyReach::Url,
        // A program probe's keys are checked through what it would run.
        _ => KeyReach::Steer,
    }
}

/// RFC 6901 escaping of one key.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Whether `value` at a key of reach `reach` may replace `local`.
fn check(
    policy: &Policy,
    reach: KeyReach,
    value: &Value,
    local: Option<&Value>,
) -> Result<(), String> {
    if reach == KeyReach::Steer || local == Some(value) {
        return Ok(());
    }
    match reach {
        KeyReach::Steer => Ok(()),
        KeyReach::Path => policy.allows_path(value),
        KeyReach::Url => policy.allows_url(value),
        KeyReach::LocalOnly => Err("only the local configuration file sets this key".to_owned()),
    }
}

/// The local configuration's probe `name` with its `probe_defaults`
/// applied, as an object.
fn local_probe(local: &Value, name: &str) -> Option<Map<String, Value>> {
    let conf = local.pointer("/properties/configurations")?;
    let entry = conf.get("probes")?.get(name)?.as_object()?;
    let mut merged = conf
        .get("probe_defaults")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    config::merge::merge(&mut merged, Value::Object(entry.clone()));
    match merged {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

fn module_of(probe: &Map<String, Value>) -> Option<&str> {
    probe.get("probe_module").and_then(Value::as_str)
}

fn reach_of(module: Option<&str>) -> Option<Reach> {
    module.and_then(probe::spec).map(|s| s.reach)
}

/// Screens the keys of one probe entry that name files or destinations
/// against `local` (the local probe of that name, defaults applied).
/// Returns the refusals; refused keys are removed from `entry`.
fn screen_probe_keys(
    policy: &Policy,
    origin: &str,
    pointer: &str,
    entry: &mut Map<String, Value>,
    local: Option<&Map<String, Value>>,
) -> Vec<Refusal> {
    let module = module_of(entry)
        .or_else(|| local.and_then(module_of))
        .map(str::to_owned);
    let reach = reach_of(module.as_deref());
    let mut refused = Vec::new();
    let keys: Vec<String> = entry.keys().cloned().collect();
    for key in keys {
        if key == "kwargs"
            && let Some(Value::Object(kwargs)) = entry.get_mut("kwargs")
        {
            let inner: Vec<String> = kwargs.keys().cloned().collect();
            for k in inner {
                let local_value = local.and_then(|l| {
                    l.get("kwargs")
                        .and_then(|kw| kw.get(&k))
                        .or_else(|| l.get(&k))
                });
                if let Err(rule) =
                    check(policy, probe_key_reach(reach, &k), &kwargs[&k], local_value)
                {
                    let p = format!("{pointer}/kwargs/{}", escape(&k));
                    refused.push(Refusal::new(origin, &p, &kwargs[&k], rule));
                    kwargs.remove(&k);
                }
            }
            continue;
        }
        let local_value = local.and_then(|l| l.get(&key));
        if let Err(rule) = check(
            policy,
            probe_key_reach(reach, &key),
            &entry[&key],
            local_value,
        ) {
            let p = format!("{pointer}/{}", escape(&key));
            refused.push(Refusal::new(origin, &p, &entry[&key], rule));
            entry.remove(&key);
        }
    }
    refused
}

/// Warns about a value of a remote record read as the original meant it,
/// once per pointer and value: the record is read again at every poll.
fn warn_once(origin: &str, pointer: &str, what: &str) {
    static SEEN: std::sync::Mutex<Option<std::collections::HashSet<String>>> =
        std::sync::Mutex::new(None);
    let key = format!("{origin}{pointer}{what}");
    let fresh = SEEN.lock().is_ok_and(|mut seen| {
        let seen = seen.get_or_insert_with(Default::default);
        // Bounded: a record that changes all the time cannot grow it.
        seen.len() < 4096 && seen.insert(key)
    });
    if fresh {
        tracing::warn!(
            origin,
            pointer,
            "a value as the original BLiPP wrote it: {what}"
        );
    }
}

/// The configuration in effect from the local one and `changes`, the
/// part of the service object `service` from UNIS that is to be merged
/// (all of it, or what changed in UNIS since blippd wrote it), with what
/// the local policy refuses left out. Fails when `service` is not a valid
/// configuration, or what is left does not make one.
pub fn merge_service(
    local: &Local,
    service: &Value,
    changes: &Value,
    origin: &str,
    precedence: Precedence,
) -> Result<(Value, Vec<Refusal>), ConfigError> {
    // A record the original BLiPP wrote (strings for numbers and booleans,
    // `ms_url` beside the service's settings) is read as it meant, with a
    // warning, instead of refusing all of it.
    let mut service = service.clone();
    for (pointer, what) in config::original::normalize(&mut service) {
        warn_once(origin, &pointer, &what);
    }
    let service = &service;
    let mut remote = changes.clone();
    config::original::normalize(&mut remote);
    // The remote document must be well formed before it is screened, and
    // its errors are reported against it as it is.
    config::schema::validate(origin, service)?;
    let policy = &local.policy;
    let mut refused = Vec::new();
    let base = "/properties/configurations";
    let local_conf = local.doc.pointer(base).and_then(Value::as_object);
    if let Some(Value::Object(conf)) = remote.pointer_mut(base) {
        let keys: Vec<String> = conf.keys().cloned().collect();
        for key in keys {
            let pointer = format!("{base}/{}", escape(&key));
            let local_value = local_conf.and_then(|c| c.get(&key));
            match key.as_str() {
                "probes" => {
                    if let Some(Value::Object(probes)) = conf.get_mut("probes") {
                        refused.extend(screen_probes(local, origin, &pointer, probes));
                    }
                }
                "probe_defaults" => {
                    if let Some(Value::Object(defaults)) = conf.get_mut(&key) {
                        let local_defaults = local_value.and_then(Value::as_object);
                        let names: Vec<String> = defaults.keys().cloned().collect();
                        for k in names {
                            let lv = local_defaults.and_then(|d| d.get(&k));
                            if let Err(rule) =
                                check(policy, probe_key_reach(None, &k), &defaults[&k], lv)
                            {
                                let p = format!("{pointer}/{}", escape(&k));
                                refused.push(Refusal::new(origin, &p, &defaults[&k], rule));
                                defaults.remove(&k);
                            }
                        }
                    }
                }
                _ => {
                    if let Err(rule) = check(policy, setting_reach(&key), &conf[&key], local_value)
                    {
                        refused.push(Refusal::new(origin, &pointer, &conf[&key], rule));
                        conf.remove(&key);
                    }
                }
            }
        }
    }
    // What program probes would run, on the configuration that would
    // result; a refused one takes its probe's (or the defaults') change
    // out, and the result is checked again.
    loop {
        let merged = config::merge_service(local, &remote, origin, precedence)?;
        let Some((name, value, rule)) = first_program_violation(local, &merged) else {
            return Ok((merged, refused));
        };
        let probes_pointer = format!("{base}/probes");
        let in_remote = remote
            .pointer_mut(&probes_pointer)
            .and_then(Value::as_object_mut)
            .and_then(|probes| probes.remove(&name));
        if in_remote.is_some() {
            let pointer = format!("{probes_pointer}/{}", escape(&name));
            refused.push(Refusal::new(origin, &pointer, &value, rule));
            continue;
        }
        let defaults_pointer = format!("{base}/probe_defaults");
        if let Some(defaults) = remote
            .pointer_mut(base)
            .and_then(Value::as_object_mut)
            .and_then(|c| c.remove("probe_defaults"))
        {
            let rule = format!("it changes what probe {name} runs to {value}: {rule}");
            refused.push(Refusal::new(origin, &defaults_pointer, &defaults, rule));
            continue;
        }
        // Nothing remote left to blame: the local configuration itself
        // runs it, which is the operator's to decide.
        return Ok((merged, refused));
    }
}

/// Screens the file and destination keys of every probe entry; an entry
/// that lost a key and has no local probe of the same module to fall back
/// on is left out whole (it would not be valid without the key).
fn screen_probes(
    local: &Local,
    origin: &str,
    pointer: &str,
    probes: &mut Map<String, Value>,
) -> Vec<Refusal> {
    let mut refused = Vec::new();
    let names: Vec<String> = probes.keys().cloned().collect();
    for name in names {
        let Some(Value::Object(entry)) = probes.get_mut(&name) else {
            continue;
        };
        let local_probe = local_probe(&local.doc, &name);
        let p = format!("{pointer}/{}", escape(&name));
        let r = screen_probe_keys(&local.policy, origin, &p, entry, local_probe.as_ref());
        if !r.is_empty() {
            let local_module = local_probe.as_ref().and_then(module_of);
            let falls_back = match (local_module, module_of(entry)) {
                (Some(ours), Some(theirs)) => ours == theirs,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !falls_back {
                probes.remove(&name);
            }
            refused.extend(r);
        }
    }
    refused
}

/// The first probe of `merged` that runs a program the local
/// configuration does not run under that name and the policy does not
/// allow: its name, what it would run, and why it may not.
fn first_program_violation(local: &Local, merged: &Value) -> Option<(String, Value, String)> {
    let probes = merged
        .pointer("/properties/configurations/probes")
        .and_then(Value::as_object)?;
    for (name, entry) in probes {
        let module = entry.get("probe_module").and_then(Value::as_str);
        if !matches!(reach_of(module), Some(Reach::Program)) {
            continue;
        }
        let pointer = format!("/properties/configurations/probes/{}", escape(name));
        let theirs = config::resolve_probe(merged, "configuration", &pointer, name, entry)
            .and_then(|p| probe::command::invocations(&p));
        let ours = local
            .doc
            .pointer(&format!(
                "/properties/configurations/probes/{}",
                escape(name)
            ))
            .filter(|e| {
                matches!(
                    reach_of(e.get("probe_module").and_then(Value::as_str)),
                    Some(Reach::Program)
                )
            })
            .and_then(|e| {
                config::resolve_probe(&local.doc, "configuration", &pointer, name, e).ok()
            })
            .and_then(|p| probe::command::invocations(&p).ok());
        match theirs {
            Err(e) => {
                return Some((
                    name.clone(),
                    entry.get("command").cloned().unwrap_or(Value::Null),
                    format!("its command does not build: {e}"),
                ));
            }
            Ok(stages) if ours.as_ref() == Some(&stages) => {}
            Ok(stages) => {
                // Every stage of a pipeline is a program of its own.
                for inv in &stages {
                    if let Err(rule) = local.policy.allows_program(inv) {
                        let shown =
                            Value::Array(inv.argv.iter().cloned().map(Value::String).collect());
                        return Some((name.clone(), shown, rule));
                    }
                }
            }
        }
    }
    None
}

/// Screens the configuration of a measurement made by others before it is
/// adopted (`-e use`): it has no local counterpart, so every file,
/// destination and program it names must be allowed by the policy.
/// `service` is the configuration in effect (for its `probe_defaults`).
pub fn screen_measurement(
    local: &Local,
    service: &Value,
    name: &str,
    configuration: &Value,
    origin: &str,
) -> Vec<Refusal> {
    let Value::Object(entry) = configuration else {
        return Vec::new();
    };
    let mut entry = entry.clone();
    let mut refused = screen_probe_keys(&local.policy, origin, "/configuration", &mut entry, None);
    if !refused.is_empty() {
        return refused;
    }
    if matches!(reach_of(module_of(&entry)), Some(Reach::Program)) {
        let built = config::resolve_probe(service, origin, "/configuration", name, configuration)
            .and_then(|p| probe::command::invocations(&p));
        match built {
            Err(e) => refused.push(Refusal::new(
                origin,
                "/configuration/command",
                entry.get("command").unwrap_or(&Value::Null),
                format!("its command does not build: {e}"),
            )),
            Ok(stages) => {
                if let Some((inv, rule)) = stages
                    .into_iter()
                    .find_map(|inv| local.policy.allows_program(&inv).err().map(|r| (inv, r)))
                {
                    let shown = Value::Array(inv.argv.into_iter().map(Value::String).collect());
                    refused.push(Refusal::new(origin, "/configuration", &shown, rule));
                }
            }
        }
    }
    refused
}

#[cfg(test)]
mod tests;
