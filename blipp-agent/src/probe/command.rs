//! What the probes that run programs share (`cmd`, `nagios`, `json_probe`,
//! `traceroute`): the keys that say how their command (or pipeline) runs,
//! checked and turned into a [`Pipeline`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::policy::{self, Invocation};
use crate::config::{ConfigError, ProbeConfig};
use crate::source::command::pipeline::Pipeline;
use crate::source::command::{BASE_ENV, Runner, argv};

/// Seconds a command may run unless `command_timeout` says otherwise.
pub const DEFAULT_TIMEOUT: f64 = 10.0;
/// The longest `command_timeout` allowed, seconds.
pub const MAX_TIMEOUT: f64 = 3600.0;
/// Bytes of standard output kept unless `output_limit` says otherwise.
pub const DEFAULT_OUTPUT_LIMIT: usize = 64 * 1024;
/// The largest `output_limit` allowed.
pub const MAX_OUTPUT_LIMIT: usize = crate::source::command::wire::MAX_STDIN;
/// The most stages a `pipeline` may have: more is a configuration that
/// wants a script.
pub const MAX_STAGES: usize = 8;

/// The `PATH` commands run with unless their `environment` sets one.
const BASE_PATH: &str = BASE_ENV[0].1;

/// The command keys.
#[derive(Deserialize)]
pub struct CommandKeys {
    /// The command line (split into words, `$key` words substituted);
    /// [`default_command`] when the probe module has one and it is not set.
    pub command: Option<String>,
    /// Command lines run one after another, each reading the previous
    /// one's output (instead of `command`).
    pub pipeline: Option<Vec<String>>,
    /// Seconds before the command's process group is killed.
    pub command_timeout: Option<f64>,
    /// Bytes of standard output beyond which the command is killed.
    pub output_limit: Option<usize>,
    /// Variables added to the command's environment.
    pub environment: Option<BTreeMap<String, String>>,
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What probe `config` would run, stage by stage (one stage for a
/// `command`): each command line split, `$key` words substituted from the
/// probe's own keys (then the common ones, as the original read them from
/// the whole configuration), the program resolved through the `PATH` it
/// will run with, and its `environment`. The trust policy checks exactly
/// these (every stage) before a remote configuration may run them, and
/// the runner executes exactly these.
pub fn invocations(config: &ProbeConfig) -> Result<Vec<Invocation>, ConfigError> {
    let keys: CommandKeys = config.options()?;
    invocations_of(config, &keys)
}

/// The command a module runs when its configuration names none: the
/// original's fixed `ceph -s -f json` for `ceph_probe`, and a numeric
/// traceroute for the traceroute probes. The trust policy sees the
/// command filled in, as the runner runs it.
pub fn default_command(module: &str) -> Option<&'static str> {
    match module {
        "ceph_probe" => Some("ceph -s -f json"),
        "traceroute" | "traceroute_probe" => Some(super::traceroute::DEFAULT_COMMAND),
        _ => None,
    }
}

/// Warns about each of the probe's own keys that is neither one of
/// `own` (the module's options) nor a `$key` word of its command lines:
/// the original read `$key` values from any key, so such a key is most
/// likely a typo.
pub fn warn_unused_keys(
    config: &ProbeConfig,
    keys: &CommandKeys,
    own: &[&str],
) -> Result<(), ConfigError> {
    let words: Vec<String> = command_lines(config, keys)?
        .iter()
        .flat_map(|(_, line)| crate::source::words::split(line).unwrap_or_default())
        .collect();
    for key in config.options.keys() {
        let used = words
            .iter()
            .any(|w| w.strip_prefix('$') == Some(key.as_str()));
        if !used && !own.contains(&key.as_str()) {
            tracing::warn!(probe = %config.name, module = %config.module, key = %key, "key is neither an option of the module nor a $key of the command");
        }
    }
    Ok(())
}

/// The command lines of probe `config` with the key each comes from: its
/// `pipeline`'s stages, else its `command`, else its module's default.
pub fn command_lines(
    config: &ProbeConfig,
    keys: &CommandKeys,
) -> Result<Vec<(String, String)>, ConfigError> {
    let at = |key: &str| format!("/properties/configurations/probes/{}/{key}", config.name);
    match (&keys.command, &keys.pipeline) {
        (Some(_), Some(stages)) => Err(ConfigError::invalid(
            "configuration",
            &at("pipeline"),
            &serde_json::json!(stages),
            "either `command` or `pipeline`, not both",
        )),
        (None, Some(stages)) if stages.is_empty() || stages.len() > MAX_STAGES => {
            Err(ConfigError::invalid(
                "configuration",
                &at("pipeline"),
                &serde_json::json!(stages),
                format!("1 to {MAX_STAGES} command lines"),
            ))
        }
        (None, Some(stages)) => Ok(stages
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("pipeline/{i}"), s.clone()))
            .collect()),
        (Some(c), None) => Ok(vec![("command".to_owned(), c.clone())]),
        (None, None) => default_command(&config.module)
            .map(|c| vec![("command".to_owned(), c.to_owned())])
            .ok_or_else(|| {
                ConfigError::invalid(
                    "configuration",
                    &at("command"),
                    &Value::Null,
                    "a command line (or a `pipeline`)",
                )
            }),
    }
}

fn invocations_of(
    config: &ProbeConfig,
    keys: &CommandKeys,
) -> Result<Vec<Invocation>, ConfigError> {
    command_lines(config, keys)?
        .into_iter()
        .map(|(key, line)| invocation_of(config, keys, &key, &line))
        .collect()
}

fn invocation_of(
    config: &ProbeConfig,
    keys: &CommandKeys,
    key_of_line: &str,
    command: &str,
) -> Result<Invocation, ConfigError> {
    let pointer = |key: &str| format!("/properties/configurations/probes/{}/{key}", config.name);
    let invalid = |key: &str, value: &Value, expected: String| {
        ConfigError::invalid("configuration", &pointer(key), value, expected)
    };
    let mut argv = argv::build(command, |k| {
        config.options.get(k).or_else(|| config.raw.get(k))
    })
    .map_err(|e| match e {
        // The value at fault is the key's, not the command's.
        argv::ArgvError::NotScalar { key, .. } => invalid(
            &key,
            config
                .options
                .get(&key)
                .or_else(|| config.raw.get(&key))
                .unwrap_or(&Value::Null),
            format!("a string, number or boolean (the command's ${key})"),
        ),
        e => invalid(
            key_of_line,
            &Value::String(command.to_owned()),
            e.to_string(),
        ),
    })?;
    let mut env = Vec::new();
    for (name, value) in keys.environment.iter().flatten() {
        if !valid_env_name(name) || value.contains('\0') {
            return Err(invalid(
                "environment",
                &Value::String(name.clone()),
                "a variable name of letters, digits and _ (not starting with a digit) and a value without NUL".to_owned(),
            ));
        }
        env.push((name.clone(), value.clone()));
    }
    let path = env
        .iter()
        .find(|(name, _)| name == "PATH")
        .map_or(BASE_PATH, |(_, value)| value.as_str());
    // A program not found stays as written: running it fails and says so,
    // at each collection, as a missing plugin should.
    if let Some(found) = policy::resolve_program(&argv[0], path) {
        argv[0] = found;
    }
    Ok(Invocation { argv, env })
}

/// Builds the pipeline of `keys` for probe `config` (see [`invocations`]).
pub fn runner(config: &ProbeConfig, keys: &CommandKeys) -> Result<Pipeline, ConfigError> {
    let stages = invocations_of(config, keys)?;
    let pointer = |key: &str| format!("/properties/configurations/probes/{}/{key}", config.name);
    let invalid = |key: &str, value: &Value, expected: String| {
        ConfigError::invalid("configuration", &pointer(key), value, expected)
    };
    let timeout = keys.command_timeout.unwrap_or(DEFAULT_TIMEOUT);
    if !(timeout > 0.0 && timeout <= MAX_TIMEOUT) {
        return Err(invalid(
            "command_timeout",
            &Value::from(timeout),
            format!("seconds, more than 0 and at most {MAX_TIMEOUT}"),
        ));
    }
    let limit = keys.output_limit.unwrap_or(DEFAULT_OUTPUT_LIMIT);
    if !(1..=MAX_OUTPUT_LIMIT).contains(&limit) {
        return Err(invalid(
            "output_limit",
            &Value::from(limit),
            format!("bytes, 1 to {MAX_OUTPUT_LIMIT}"),
        ));
    }
    let timeout = Duration::from_secs_f64(timeout);
    let runners = stages
        .into_iter()
        .map(|Invocation { argv, env }| {
            tracing::info!(probe = %config.name, argv = ?argv, "command");
            Runner::new(argv, env, timeout, limit)
        })
        .collect();
    Ok(Pipeline::new(runners, timeout))
}
