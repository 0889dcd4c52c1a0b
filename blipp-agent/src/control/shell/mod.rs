//! `blippcmd shell`: the original blippcmd's interactive navigation of the
//! running configuration (`cd`, `ls`, `lsd`, `pwd`, `mkdir`), with `set`,
//! `del` and `mkdir` applied at once through the control socket (the
//! original edited a copy and pushed it to UNIS with `put`; blippcmd's
//! UNIS-client mode does that).
//!
//! On a terminal, lines are read with rustyline: editing, Tab completion
//! ([`complete`]), Ctrl-C cancels the line being typed and Ctrl-D leaves,
//! and the history is kept across sessions ([`history`]). From a pipe or
//! a file, lines are read as they come, each prompt printed before it, so
//! that a script's transcript reads in order; nothing is added to the
//! history.

pub mod complete;
pub mod history;
pub mod keys;
pub mod line;
pub mod path;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, Editor};
use serde_json::Value;

use super::client::{Client, ClientError};
use super::protocol::{Changes, Request};
use super::show;
use line::{HELP, Line};
use path::{list, resolve, split_last};

/// What one command asks of blippd, and how the shell moves.
struct Shell<'a> {
    socket: &'a Path,
    cwd: String,
}

impl Shell<'_> {
    fn ask(&self, request: &Request) -> Result<Value, ClientError> {
        Client::connect(self.socket)?.request(request)
    }

    fn config(&self) -> Result<Value, String> {
        self.ask(&Request::Config {}).map_err(|e| e.to_string())
    }

    fn config_at(&self, pointer: &str) -> Result<Value, String> {
        self.config()?
            .pointer(pointer)
            .cloned()
            .ok_or_else(|| format!("{pointer}: no such key"))
    }

    fn changes(&self, request: &Request) -> Result<String, String> {
        let v = self.ask(request).map_err(|e| e.to_string())?;
        let c: Changes = serde_json::from_value(v).map_err(|e| e.to_string())?;
        Ok(show::changes(&c))
    }

    fn here(&self, path: Option<&String>) -> String {
        resolve(&self.cwd, path.map_or("", String::as_str))
    }

    fn prompt(&self) -> String {
        format!(
            "blipp:{}> ",
            if self.cwd.is_empty() { "/" } else { &self.cwd }
        )
    }

    /// Runs one line; `None` to leave.
    fn line(&mut self, text: &str) -> Option<Result<String, String>> {
        let cmd = match line::parse(text) {
            Ok(cmd) => cmd,
            Err(e) => return Some(Err(e.to_string())),
        };
        Some(match cmd {
            Line::Exit => return None,
            Line::Empty => Ok(String::new()),
            Line::Help => Ok(HELP.to_owned()),
            Line::Pwd => Ok(format!(
                "{}\n",
                if self.cwd.is_empty() { "/" } else { &self.cwd }
            )),
            Line::Cd(to) => {
                let to = to.map_or_else(String::new, |p| resolve(&self.cwd, &p));
                match self.config_at(&to) {
                    Ok(Value::Object(_)) => {
                        self.cwd = to;
                        Ok(String::new())
                    }
                    Ok(_) => Err(format!("{to}: not an object")),
                    Err(e) => Err(e),
                }
            }
            Line::Ls(at) => self.config_at(&self.here(at.as_ref())).map(|v| list(&v)),
            Line::Lsd(at) => self.config_at(&self.here(at.as_ref())).map(|v| {
                let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
                text.push('\n');
                text
            }),
            Line::Set { key, value } => self.changes(&Request::Set {
                pointer: resolve(&self.cwd, &key),
                value,
            }),
            Line::Del(key) => self.changes(&Request::Delete {
                pointer: resolve(&self.cwd, &key),
            }),
            Line::Mkdir { path, parents } => self.mkdir(&resolve(&self.cwd, &path), parents),
            Line::Status => self
                .ask(&Request::Status {})
                .map_err(|e| e.to_string())
                .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
                .map(|r| show::status(&r, crate::sample::Timestamp::now().0)),
            Line::Reload => self.changes(&Request::Reload {}),
        })
    }

    /// An empty object at `pointer`, as one edit (blippd makes missing
    /// parents of a set key, so `-p` only decides whether they may be
    /// missing). The edit is checked as any other: an object the schema
    /// refuses empty (a probe without `probe_module`) is refused.
    fn mkdir(&self, pointer: &str, parents: bool) -> Result<String, String> {
        let Some((parent, _)) = split_last(pointer) else {
            return Err("/: exists".to_owned());
        };
        let config = self.config()?;
        match config.pointer(pointer) {
            Some(Value::Object(_)) if parents => return Ok(String::new()),
            Some(_) => return Err(format!("{pointer}: exists")),
            None => {}
        }
        if !parents && !config.pointer(parent).is_some_and(Value::is_object) {
            return Err(format!(
                "{}: no such object (mkdir -p makes it)",
                if parent.is_empty() { "/" } else { parent }
            ));
        }
        self.changes(&Request::Set {
            pointer: pointer.to_owned(),
            value: Value::Object(serde_json::Map::new()),
        })
    }
}

/// Runs the shell on `input` until `exit` or its end, printing each prompt
/// and every answer to `out` (errors too, so that a session reads in
/// order). This is the shell when standard input is no terminal.
pub fn run(socket: &Path, input: impl BufRead, mut out: impl Write) -> std::io::Result<()> {
    let mut shell = Shell {
        socket,
        cwd: String::new(),
    };
    write!(out, "{}", shell.prompt())?;
    out.flush()?;
    for text in input.lines() {
        match shell.line(&text?) {
            None => break,
            Some(Ok(text)) => write!(out, "{text}")?,
            Some(Err(e)) => writeln!(out, "error: {e}")?,
        }
        write!(out, "{}", shell.prompt())?;
        out.flush()?;
    }
    writeln!(out)
}

/// Completion for rustyline: the configuration is fetched at each Tab.
struct Helper {
    socket: PathBuf,
    cwd: String,
    schema: Value,
}

impl rustyline::completion::Completer for Helper {
    type Candidate = rustyline::completion::Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Self::Candidate>)> {
        let config = Client::connect(&self.socket)
            .and_then(|mut c| c.request(&Request::Config {}))
            .ok();
        let (start, found) =
            complete::complete(line, pos, &self.cwd, config.as_ref(), &self.schema);
        Ok((
            start,
            found
                .into_iter()
                .map(|c| rustyline::completion::Pair {
                    display: c.display,
                    replacement: c.replacement,
                })
                .collect(),
        ))
    }
}

impl rustyline::hint::Hinter for Helper {
    type Hint = String;
}

impl rustyline::highlight::Highlighter for Helper {}

impl rustyline::validate::Validator for Helper {}

impl rustyline::Helper for Helper {}

/// Runs the shell on the terminal, printing to `out`. A history that
/// cannot be read or written is said once on `out`; the shell works on
/// without it.
pub fn interactive(
    socket: &Path,
    history: Option<&Path>,
    mut out: impl Write,
) -> Result<(), ReadlineError> {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(true)
        .history_ignore_dups(true)?
        .history_ignore_space(true)
        .max_history_size(1000)?
        .build();
    let mut editor: Editor<Helper, FileHistory> = Editor::with_config(config)?;
    editor.set_helper(Some(Helper {
        socket: socket.to_owned(),
        cwd: String::new(),
        schema: serde_json::from_str(crate::config::schema::SCHEMA_TEXT).unwrap_or_default(),
    }));
    if let Some(file) = history {
        match editor.load_history(file) {
            Ok(()) => {}
            Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => writeln!(out, "history: {}: {e}", file.display())?,
        }
    }
    let mut shell = Shell {
        socket,
        cwd: String::new(),
    };
    loop {
        if let Some(h) = editor.helper_mut() {
            h.cwd.clone_from(&shell.cwd);
        }
        match editor.readline(&shell.prompt()) {
            Ok(text) => match shell.line(&text) {
                None => break,
                Some(Ok(text)) => write!(out, "{text}")?,
                Some(Err(e)) => writeln!(out, "error: {e}")?,
            },
            // The line being typed is dropped; the shell goes on.
            Err(ReadlineError::Interrupted) => {}
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e),
        }
        out.flush()?;
    }
    if let Some(file) = history
        && let Err(e) = history::prepare(file)
            .map_err(ReadlineError::Io)
            .and_then(|()| editor.append_history(file))
    {
        writeln!(out, "history: {}: {e}; not kept", file.display())?;
    }
    Ok(())
}
