//! What the `cmd` and `nagios` probes share: the keys that say how their
//! command runs, checked and turned into a [`Runner`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::policy::{self, Invocation};
use crate::config::{ConfigError, ProbeConfig};
use crate::source::command::{BASE_ENV, Runner, argv};

/// Seconds a command may run unless `command_timeout` says otherwise.
pub const DEFAULT_TIMEOUT: f64 = 10.0;
/// The longest `command_timeout` allowed, seconds.
pub const MAX_TIMEOUT: f64 = 3600.0;
/// Bytes of standard output kept unless `output_limit` says otherwise.
pub const DEFAULT_OUTPUT_LIMIT: usize = 64 * 1024;
/// The largest `output_limit` allowed.
pub const MAX_OUTPUT_LIMIT: usize = 16 * 1024 * 1024;

/// The `PATH` commands run with unless their `environment` sets one.
const BASE_PATH: &str = BASE_ENV[0].1;

/// The command keys.
#[derive(Deserialize)]
pub struct CommandKeys {
    /// The command line (split into words, `$key` words substituted);
    /// [`default_command`] when the probe module has one and it is not set.
    pub command: Option<String>,
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

/// What probe `config` would run: its command split, `$key` words
/// substituted from the probe's own keys (then the common ones, as the
/// original read them from the whole configuration), the program resolved
/// through the `PATH` it will run with, and its `environment`. The trust
/// policy checks exactly this before a remote configuration may run it, and
/// the runner executes exactly this.
pub fn invocation(config: &ProbeConfig) -> Result<Invocation, ConfigError> {
    let keys: CommandKeys = config.options()?;
    invocation_of(config, &keys)
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

/// The command line of probe `config`: its `command`, else its module's
/// default.
pub fn command_line(config: &ProbeConfig, keys: &CommandKeys) -> Result<String, ConfigError> {
    keys.command
        .clone()
        .or_else(|| default_command(&config.module).map(str::to_owned))
        .ok_or_else(|| {
            ConfigError::invalid(
                "configuration",
                &format!("/properties/configurations/probes/{}", config.name),
                &Value::String(config.name.clone()),
                "a probe with a `command`".to_owned(),
            )
        })
}

fn invocation_of(config: &ProbeConfig, keys: &CommandKeys) -> Result<Invocation, ConfigError> {
    let pointer = |key: &str| format!("/properties/configurations/probes/{}/{key}", config.name);
    let invalid = |key: &str, value: &Value, expected: String| {
        ConfigError::invalid("configuration", &pointer(key), value, expected)
    };
    let command = command_line(config, keys)?;
    let mut argv = argv::build(&command, |k| {
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
        e => invalid("command", &Value::String(command.clone()), e.to_string()),
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

/// Builds the runner of `keys` for probe `config` (see [`invocation`]).
pub fn runner(config: &ProbeConfig, keys: &CommandKeys) -> Result<Runner, ConfigError> {
    let Invocation { argv, env } = invocation_of(config, keys)?;
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
    tracing::info!(probe = %config.name, argv = ?argv, "command");
    Ok(Runner::new(
        argv,
        env,
        Duration::from_secs_f64(timeout),
        limit,
    ))
}
