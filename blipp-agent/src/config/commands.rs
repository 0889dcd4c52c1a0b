//! `command_user` and `command_limits`: who the commands of the `cmd` and
//! `nagios` probes run as, and with what limits. Checked against the
//! passwd database where the configuration is read, so that a user that
//! does not exist, or is root, stops blippd at start-up instead of failing
//! every collection.

use serde_json::{Map, Value};

use super::ConfigError;
use crate::source::command::sandbox::{self, Account, Limits};

const USER_POINTER: &str = "/properties/configurations/command_user";
const LIMITS_POINTER: &str = "/properties/configurations/command_limits";

/// The command user `conf` names, or the default one (see
/// [`sandbox::DEFAULT_USER`]).
pub fn user(origin: &str, conf: &Map<String, Value>) -> Result<Account, ConfigError> {
    let expected = "the name of an existing user other than root (uid 0)";
    let Some(value) = conf.get("command_user") else {
        return default_user(origin);
    };
    let invalid = || ConfigError::invalid(origin, USER_POINTER, value, expected);
    let name = value
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(invalid)?;
    match sandbox::lookup(name) {
        Ok(Some(account)) if account.uid != 0 => Ok(account),
        Ok(_) => Err(invalid()),
        Err(e) => Err(ConfigError::invalid(
            origin,
            USER_POINTER,
            value,
            format!("{expected} (the passwd database could not be read: {e})"),
        )),
    }
}

fn default_user(origin: &str) -> Result<Account, ConfigError> {
    for name in [sandbox::DEFAULT_USER, sandbox::FALLBACK_USER] {
        if let Ok(Some(account)) = sandbox::lookup(name)
            && account.uid != 0
        {
            return Ok(account);
        }
    }
    Err(ConfigError::invalid(
        origin,
        USER_POINTER,
        &Value::Null,
        format!(
            "a user to run commands as: neither {} nor {} exists here",
            sandbox::DEFAULT_USER,
            sandbox::FALLBACK_USER
        ),
    ))
}

/// The limits `conf` sets, the defaults for the others.
pub fn limits(origin: &str, conf: &Map<String, Value>) -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    let Some(value) = conf.get("command_limits") else {
        return Ok(limits);
    };
    let Some(object) = value.as_object() else {
        return Err(ConfigError::invalid(
            origin,
            LIMITS_POINTER,
            value,
            "an object of cpu_seconds, address_space_mb, processes, open_files",
        ));
    };
    for (key, v) in object {
        let slot = match key.as_str() {
            "cpu_seconds" => &mut limits.cpu_seconds,
            "address_space_mb" => &mut limits.address_space_mb,
            "processes" => &mut limits.processes,
            "open_files" => &mut limits.open_files,
            _ => {
                return Err(ConfigError::invalid(
                    origin,
                    &format!("{LIMITS_POINTER}/{key}"),
                    v,
                    "one of cpu_seconds, address_space_mb, processes, open_files",
                ));
            }
        };
        *slot = v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
            ConfigError::invalid(
                origin,
                &format!("{LIMITS_POINTER}/{key}"),
                v,
                "a whole number above 0",
            )
        })?;
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn conf(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_default_user_is_blipp_cmd_or_nobody() {
        let u = user("f", &Map::new()).unwrap();
        let expected = if sandbox::lookup(sandbox::DEFAULT_USER).unwrap().is_some() {
            sandbox::DEFAULT_USER
        } else {
            sandbox::FALLBACK_USER
        };
        assert_eq!(u.name, expected);
        assert_ne!(u.uid, 0);
    }

    #[test]
    fn a_named_user_is_looked_up() {
        let u = user("f", &conf(json!({"command_user": "nobody"}))).unwrap();
        assert_eq!(u.name, "nobody");
        assert_eq!(Some(u), sandbox::lookup("nobody").unwrap());
    }

    #[test]
    fn root_and_unknown_users_are_refused_naming_file_pointer_and_value() {
        for name in ["root", "blipp-no-such-user-here"] {
            let e = user("/etc/blipp/x.json", &conf(json!({"command_user": name}))).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "/etc/blipp/x.json: /properties/configurations/command_user: \"{name}\" is invalid: the name of an existing user other than root (uid 0)"
                )
            );
        }
    }

    #[test]
    fn limits_default_and_override_one_by_one() {
        assert_eq!(limits("f", &Map::new()).unwrap(), Limits::default());
        let l = limits(
            "f",
            &conf(json!({"command_limits": {"cpu_seconds": 5, "open_files": 32}})),
        )
        .unwrap();
        assert_eq!(
            l,
            Limits {
                cpu_seconds: 5,
                open_files: 32,
                ..Limits::default()
            }
        );
    }

    #[test]
    fn bad_limits_name_their_key() {
        let e = limits("f", &conf(json!({"command_limits": {"processes": 0}}))).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "f: /properties/configurations/command_limits/processes: 0 is invalid"
            ),
            "{e}"
        );
        let e = limits("f", &conf(json!({"command_limits": {"nice": 3}}))).unwrap_err();
        assert!(e.to_string().contains("command_limits/nice"), "{e}");
    }
}
