//! Where `blippcmd shell` keeps its history across sessions: the XDG base
//! directory for state (`$XDG_STATE_HOME/blipp/history`, else
//! `~/.local/state/blipp/history`), the home of whoever runs blippcmd
//! (under `sudo`, root's). History is state, not configuration or cache:
//! losing it loses nothing that matters, and it should not roam.

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

/// The history file for the environment `var` reads; `None` when neither
/// variable names a directory (the shell then keeps no history).
pub fn path(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    // The XDG specification ignores a relative value.
    let dir = |name: &str| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
    dir("XDG_STATE_HOME")
        .or_else(|| dir("HOME").map(|h| h.join(".local/state")))
        .map(|state| state.join("blipp/history"))
}

/// Makes the directory that holds `file`, private (0700: a history holds
/// configuration values); rustyline writes the file itself 0600.
pub fn prepare(file: &Path) -> std::io::Result<()> {
    match file.parent() {
        Some(dir) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn xdg_state_home_first_then_home() {
        assert_eq!(
            path(env(&[("XDG_STATE_HOME", "/s"), ("HOME", "/root")])),
            Some(PathBuf::from("/s/blipp/history"))
        );
        assert_eq!(
            path(env(&[("HOME", "/root")])),
            Some(PathBuf::from("/root/.local/state/blipp/history"))
        );
        assert_eq!(
            path(env(&[("XDG_STATE_HOME", "relative"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.local/state/blipp/history"))
        );
        assert_eq!(path(env(&[("HOME", "")])), None);
        assert_eq!(path(env(&[])), None);
    }

    #[test]
    fn the_directory_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("state/blipp/history");
        prepare(&file).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(dir.path().join("state/blipp"))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_default();
        assert_eq!(mode, 0o700);
    }
}
