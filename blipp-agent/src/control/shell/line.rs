//! One line of `blippcmd shell` as a command: pure, so that what the shell
//! accepts is tested without a blippd. Words are split as a POSIX shell
//! splits them (`shell-words`: quotes group, `\` escapes, `#` starts a
//! comment); nothing is expanded or run.

use serde_json::Value;

use crate::config::edit::value_from_arg;

/// What one line asks for. Paths are as typed, relative to the current
/// one unless they start with `/` (see [`super::path::resolve`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    /// Nothing (an empty line or a comment).
    Empty,
    /// Leave the shell.
    Exit,
    /// The list of commands.
    Help,
    /// Print the current path.
    Pwd,
    /// Go to a path; `None` is the top.
    Cd(Option<String>),
    /// One level of a path (the current one when `None`).
    Ls(Option<String>),
    /// Everything under a path.
    Lsd(Option<String>),
    /// Set a key to a value, at once.
    Set {
        /// The key.
        key: String,
        /// Its new value.
        value: Value,
    },
    /// Remove a key, at once.
    Del(String),
    /// Make an empty object at a path, at once.
    Mkdir {
        /// Where.
        path: String,
        /// `-p`: make missing parents too, and accept an object already
        /// there.
        parents: bool,
    },
    /// blippd's status.
    Status,
    /// Read the configuration file again.
    Reload,
}

/// The commands, for `help` and completion.
pub const COMMANDS: [&str; 14] = [
    "cd", "del", "exit", "help", "ls", "lsd", "mkdir", "pwd", "quit", "reload", "set", "show",
    "status", "?",
];

/// The commands whose arguments are paths into the configuration.
pub const PATH_COMMANDS: [&str; 7] = ["cd", "ls", "lsd", "show", "set", "del", "mkdir"];

/// What `help` prints.
pub const HELP: &str = "\
cd [PATH]           go to PATH (/ is the top, .. goes up; no PATH: the top)
ls [PATH]           list the keys at PATH (objects end with /)
lsd [PATH]          show everything under PATH (also: show)
pwd                 print the current path
set KEY VALUE       set KEY (relative to the current path) to VALUE, at once: JSON (quote it: '[\"eth0\"]'), else text
del KEY             remove KEY, at once
mkdir [-p] PATH     make an empty object at PATH, at once (-p: with missing parents; no error if it exists)
status              blippd's status
reload              read the configuration file again (drops edits)
exit                leave (also quit, Ctrl-D; Ctrl-C cancels the line being typed)
Tab completes commands, keys and paths.
";

/// Why a line is no command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The words could not be split (an open quote, a trailing `\`).
    #[error("{0}")]
    Words(String),
    /// No such command.
    #[error("{0}: unknown command (help lists them)")]
    Unknown(String),
    /// The command exists; its arguments do not fit.
    #[error("usage: {0}")]
    Usage(&'static str),
}

/// The command `text` asks for.
pub fn parse(text: &str) -> Result<Line, LineError> {
    let words = shell_words::split(text).map_err(|e| LineError::Words(e.to_string()))?;
    let Some((cmd, args)) = words.split_first() else {
        return Ok(Line::Empty);
    };
    let one = |usage| match args {
        [] => Ok(None),
        [p] => Ok(Some(p.clone())),
        _ => Err(LineError::Usage(usage)),
    };
    let none = |line: Line, usage| {
        if args.is_empty() {
            Ok(line)
        } else {
            Err(LineError::Usage(usage))
        }
    };
    match cmd.as_str() {
        "exit" | "quit" => Ok(Line::Exit),
        "help" | "?" => Ok(Line::Help),
        "pwd" => none(Line::Pwd, "pwd"),
        "status" => none(Line::Status, "status"),
        "reload" => none(Line::Reload, "reload"),
        "cd" => one("cd [PATH]").map(Line::Cd),
        "ls" => one("ls [PATH]").map(Line::Ls),
        "lsd" | "show" => one("lsd [PATH]").map(Line::Lsd),
        "del" => match args {
            [key] => Ok(Line::Del(key.clone())),
            _ => Err(LineError::Usage("del KEY")),
        },
        // The value may be typed in several words (`set ifaces [1, 2]`).
        "set" => match args {
            [key, value @ ..] if !value.is_empty() => Ok(Line::Set {
                key: key.clone(),
                value: value_from_arg(&value.join(" ")),
            }),
            _ => Err(LineError::Usage("set KEY VALUE")),
        },
        "mkdir" => match args {
            [flag, path] if flag == "-p" => Ok(Line::Mkdir {
                path: path.clone(),
                parents: true,
            }),
            [path] if !path.starts_with('-') => Ok(Line::Mkdir {
                path: path.clone(),
                parents: false,
            }),
            _ => Err(LineError::Usage("mkdir [-p] PATH")),
        },
        other => Err(LineError::Unknown(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(text: &str) -> Line {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn navigation() {
        assert_eq!(ok(""), Line::Empty);
        assert_eq!(ok("   # a comment"), Line::Empty);
        assert_eq!(ok("cd"), Line::Cd(None));
        assert_eq!(ok("cd ../probes"), Line::Cd(Some("../probes".into())));
        assert_eq!(ok("ls"), Line::Ls(None));
        assert_eq!(ok("show cpu"), Line::Lsd(Some("cpu".into())));
        assert_eq!(ok("pwd"), Line::Pwd);
        assert_eq!(ok("quit"), Line::Exit);
        assert_eq!(ok("?"), Line::Help);
    }

    #[test]
    fn values_are_json_else_text_and_quotes_group() {
        assert_eq!(
            ok("set schedule_params/every 2"),
            Line::Set {
                key: "schedule_params/every".into(),
                value: json!(2)
            }
        );
        assert_eq!(
            ok("set status OFF"),
            Line::Set {
                key: "status".into(),
                value: json!("OFF")
            }
        );
        assert_eq!(
            ok(r#"set 'a key' "two words""#),
            Line::Set {
                key: "a key".into(),
                value: json!("two words")
            }
        );
        assert_eq!(
            ok(r#"set ifaces '["eth0", "lo"]'"#),
            Line::Set {
                key: "ifaces".into(),
                value: json!(["eth0", "lo"])
            }
        );
    }

    #[test]
    fn mkdir_takes_p() {
        assert_eq!(
            ok("mkdir kwargs"),
            Line::Mkdir {
                path: "kwargs".into(),
                parents: false
            }
        );
        assert_eq!(
            ok("mkdir -p a/b/c"),
            Line::Mkdir {
                path: "a/b/c".into(),
                parents: true
            }
        );
        assert_eq!(
            parse("mkdir -x a"),
            Err(LineError::Usage("mkdir [-p] PATH"))
        );
        assert_eq!(parse("mkdir"), Err(LineError::Usage("mkdir [-p] PATH")));
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(parse("set status"), Err(LineError::Usage("set KEY VALUE")));
        assert_eq!(parse("cd a b"), Err(LineError::Usage("cd [PATH]")));
        assert_eq!(parse("pwd x"), Err(LineError::Usage("pwd")));
        assert_eq!(parse("del"), Err(LineError::Usage("del KEY")));
        assert_eq!(parse("rm x"), Err(LineError::Unknown("rm".into())));
        assert!(matches!(parse("set a 'open"), Err(LineError::Words(_))));
        assert_eq!(
            parse("rm x").map_err(|e| e.to_string()),
            Err("rm: unknown command (help lists them)".into())
        );
    }
}
