//! The argument vector of a configured command: the original BLiPP's
//! `command` string split into words (see [`crate::source::words`]) and
//! its `$key` words replaced from the probe's configuration.
//!
//! Substitution applies to whole words only (`--host=$address` stays as
//! written). For a word `$key`:
//!
//! - `key` not configured: the word is dropped (optional flags: `ping $-W
//!   $address` works with or without a `-W` key);
//! - `true`: the word becomes `key` itself (`$-v` with `"-v": true` gives
//!   `-v`), `false`: the word is dropped;
//! - `key` starting with `-`: two words, `key` and the value (`$-c` with
//!   `"-c": 3` gives `-c 3`);
//! - otherwise the value (`$address` with `"address": "10.0.0.1"`).
//!
//! Values must be strings, numbers or booleans; each becomes exactly one
//! argument whatever it contains (no re-splitting, no shell). Two
//! additions to the original: `$$word` gives the literal `$word`, and a
//! lone `$` stays as it is (the original dropped both).

use serde_json::Value;

use crate::source::words::{self, WordsError};

/// Why a command could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ArgvError {
    /// The command string does not split.
    #[error("command: {0}")]
    Words(#[from] WordsError),
    /// Nothing is left to run.
    #[error("command: no program to run after substitution")]
    Empty,
    /// A substituted value is an object, array or null.
    #[error("${key}: the value must be a string, number or boolean, not {value}")]
    NotScalar {
        /// The key.
        key: String,
        /// The value, as JSON.
        value: String,
    },
    /// An argument contains a NUL byte, which no argument can.
    #[error("command: an argument contains a NUL byte")]
    Nul,
}

fn text(key: &str, value: &Value) -> Result<String, ArgvError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        // serde_json prints floats as Python's str() did (3.0 stays "3.0").
        Value::Number(n) => Ok(n.to_string()),
        other => Err(ArgvError::NotScalar {
            key: key.to_owned(),
            value: other.to_string(),
        }),
    }
}

/// Splits `command` and substitutes its `$key` words through `lookup`.
pub fn build<'a>(
    command: &str,
    lookup: impl Fn(&str) -> Option<&'a Value>,
) -> Result<Vec<String>, ArgvError> {
    let mut argv = Vec::new();
    for word in words::split(command)? {
        match word.strip_prefix('$') {
            Some(literal) if literal.starts_with('$') => argv.push(literal.to_owned()),
            Some(key) if !key.is_empty() => match lookup(key) {
                None | Some(Value::Bool(false)) => {}
                Some(Value::Bool(true)) => argv.push(key.to_owned()),
                Some(value) => {
                    if key.starts_with('-') {
                        argv.push(key.to_owned());
                    }
                    argv.push(text(key, value)?);
                }
            },
            _ => argv.push(word),
        }
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(ArgvError::Nul);
    }
    if argv.first().is_none_or(String::is_empty) {
        return Err(ArgvError::Empty);
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(command: &str, config: &Value) -> Result<Vec<String>, ArgvError> {
        build(command, |k| config.get(k))
    }

    #[test]
    fn the_originals_own_test() {
        // test/test_cmd_line_probe.py of the original BLiPP, same config and
        // the same expected vector.
        let config = json!({
            "address": "iu.edu",
            "command": "ping -c 1 $-W $-s $-t $-p $-M $-Q $address",
            "-M": "dont", "-s": 56, "-p": "00", "-t": 60, "-W": 2, "-Q": "0",
            "name": "my_test_ping_probe",
        });
        let argv = run(config["command"].as_str().unwrap(), &config).unwrap();
        assert_eq!(
            argv,
            "ping -c 1 -W 2 -s 56 -t 60 -p 00 -M dont -Q 0 iu.edu"
                .split(' ')
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn booleans_missing_keys_and_literals() {
        let config =
            json!({"-v": true, "-q": false, "verbose": true, "host": "a b; rm -rf /", "f": 2.0});
        assert_eq!(
            run(
                "cmd $-v $-q $verbose $-x $missing $host $f $$HOME $ --opt=$host",
                &config
            )
            .unwrap(),
            [
                "cmd",
                "-v",
                "verbose",
                "a b; rm -rf /",
                "2.0",
                "$HOME",
                "$",
                "--opt=$host"
            ]
        );
    }

    #[test]
    fn refused() {
        let config = json!({"list": [1], "obj": {}, "nul": "a\u{0}b", "empty": ""});
        assert!(
            matches!(run("cmd $list", &config), Err(ArgvError::NotScalar { key, .. }) if key == "list")
        );
        assert!(matches!(
            run("cmd $obj", &config),
            Err(ArgvError::NotScalar { .. })
        ));
        assert!(matches!(run("cmd $nul", &config), Err(ArgvError::Nul)));
        assert!(matches!(run("$missing", &config), Err(ArgvError::Empty)));
        assert!(matches!(run("$empty x", &config), Err(ArgvError::Empty)));
        assert!(matches!(run("", &config), Err(ArgvError::Empty)));
        assert!(matches!(run("cmd 'x", &config), Err(ArgvError::Words(_))));
    }
}
