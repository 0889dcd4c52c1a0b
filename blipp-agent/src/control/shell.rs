//! `blippcmd shell`: the original blippcmd's interactive navigation of the
//! running configuration (`cd`, `ls`, `lsd`, `pwd`), with `set` and `del`
//! applied at once through the control socket (the original edited a copy
//! and pushed it to UNIS with `put`; blippcmd's UNIS-client mode does
//! that).
//!
//! Paths are JSON pointers, relative to the current one unless they start
//! with `/`; `..` goes up. Words are split like a shell's (quotes group),
//! and nothing is ever run by a shell.

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::Path;

use serde_json::Value;

use super::client::{Client, ClientError};
use super::protocol::{Changes, Request};
use super::show;
use crate::config::edit::value_from_arg;
use crate::source::words;

/// The pointer `path` names from `cwd` (both pointers, `""` the root).
pub fn resolve(cwd: &str, path: &str) -> String {
    let mut parts: Vec<&str> = if path.starts_with('/') {
        Vec::new()
    } else {
        cwd.split('/').filter(|p| !p.is_empty()).collect()
    };
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.iter().fold(String::new(), |mut s, p| {
        s.push('/');
        s.push_str(p);
        s
    })
}

/// One level of `node`: objects as `name/`, other values as `name: value`.
pub fn list(node: &Value) -> String {
    match node {
        Value::Object(m) => m.iter().fold(String::new(), |mut out, (k, v)| {
            let _ = match v {
                Value::Object(_) => writeln!(out, "{k}/"),
                other => writeln!(out, "{k}: {other}"),
            };
            out
        }),
        other => format!("{other}\n"),
    }
}

const HELP: &str = "\
cd PATH         go to PATH (/ is the top, .. goes up)
ls [PATH]       list the keys at PATH (objects end with /)
lsd [PATH]      show everything under PATH
pwd             print the current path
set KEY VALUE   set KEY (relative to the current path) to VALUE (JSON, else text), at once
del KEY         remove KEY, at once
status          blippd's status
reload          read the configuration file again (drops edits)
exit            leave (also Ctrl-D)
";

/// The shell's state.
struct Shell<'a> {
    socket: &'a Path,
    cwd: String,
}

impl Shell<'_> {
    fn ask(&self, request: &Request) -> Result<Value, ClientError> {
        Client::connect(self.socket)?.request(request)
    }

    fn config_at(&self, pointer: &str) -> Result<Value, String> {
        let config = self.ask(&Request::Config {}).map_err(|e| e.to_string())?;
        config
            .pointer(pointer)
            .cloned()
            .ok_or_else(|| format!("{pointer}: no such key"))
    }

    fn changes(&self, request: &Request) -> Result<String, String> {
        let v = self.ask(request).map_err(|e| e.to_string())?;
        let c: Changes = serde_json::from_value(v).map_err(|e| e.to_string())?;
        Ok(show::changes(&c))
    }

    /// Runs one line; `None` to leave.
    fn line(&mut self, line: &str) -> Option<Result<String, String>> {
        let words = match words::split(line) {
            Ok(w) => w,
            Err(e) => return Some(Err(e.to_string())),
        };
        let arg = |i: usize| words.get(i).map(String::as_str);
        let here = |p: Option<&str>| resolve(&self.cwd, p.unwrap_or(""));
        Some(match (arg(0), words.len()) {
            (None, _) => Ok(String::new()),
            (Some("exit" | "quit"), _) => return None,
            (Some("help" | "?"), _) => Ok(HELP.to_owned()),
            (Some("pwd"), 1) => Ok(format!(
                "{}\n",
                if self.cwd.is_empty() { "/" } else { &self.cwd }
            )),
            (Some("cd"), 1 | 2) => {
                let to = here(arg(1));
                match self.config_at(&to) {
                    Ok(Value::Object(_)) => {
                        self.cwd = to;
                        Ok(String::new())
                    }
                    Ok(_) => Err(format!("{to}: not an object")),
                    Err(e) => Err(e),
                }
            }
            (Some("ls"), 1 | 2) => self.config_at(&here(arg(1))).map(|v| list(&v)),
            (Some("lsd" | "show"), 1 | 2) => self.config_at(&here(arg(1))).map(|v| {
                let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
                text.push('\n');
                text
            }),
            (Some("set"), 3..) => self.changes(&Request::Set {
                pointer: here(arg(1)),
                value: value_from_arg(&words[2..].join(" ")),
            }),
            (Some("del"), 2) => self.changes(&Request::Delete {
                pointer: here(arg(1)),
            }),
            (Some("status"), 1) => self
                .ask(&Request::Status {})
                .map_err(|e| e.to_string())
                .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
                .map(|r| show::status(&r, crate::sample::Timestamp::now().0)),
            (Some("reload"), 1) => self.changes(&Request::Reload {}),
            (Some(cmd), _) => Err(format!(
                "{cmd}: unknown command or wrong arguments (help lists them)"
            )),
        })
    }
}

/// Runs the shell on `input` until `exit` or its end, printing to `out`
/// (errors too, so that a session reads in order).
pub fn run(socket: &Path, input: impl BufRead, mut out: impl Write) -> std::io::Result<()> {
    let mut shell = Shell {
        socket,
        cwd: String::new(),
    };
    write!(out, "blipp:/> ")?;
    out.flush()?;
    for line in input.lines() {
        match shell.line(&line?) {
            None => break,
            Some(Ok(text)) => write!(out, "{text}")?,
            Some(Err(e)) => writeln!(out, "error: {e}")?,
        }
        write!(
            out,
            "blipp:{}> ",
            if shell.cwd.is_empty() {
                "/"
            } else {
                &shell.cwd
            }
        )?;
        out.flush()?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths() {
        assert_eq!(resolve("", "properties"), "/properties");
        assert_eq!(
            resolve("/properties", "configurations/probes"),
            "/properties/configurations/probes"
        );
        assert_eq!(resolve("/properties/configurations", ".."), "/properties");
        assert_eq!(resolve("/properties", "../.."), "");
        assert_eq!(resolve("/properties", "/status"), "/status");
        assert_eq!(resolve("/a", ""), "/a");
        assert_eq!(resolve("/a", "./b/../c"), "/a/c");
    }

    #[test]
    fn listing() {
        assert_eq!(
            list(&json!({"cpu": {"probe_module": "cpu"}, "every": 5, "mode": "auto"})),
            "cpu/\nevery: 5\nmode: \"auto\"\n"
        );
        assert_eq!(list(&json!(3)), "3\n");
    }
}
