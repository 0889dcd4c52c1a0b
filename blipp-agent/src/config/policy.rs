//! The local trust policy: what a configuration from the network (the
//! service record in UNIS, a measurement adopted with `-e use`) may make
//! blippd do beyond steering its probes.
//!
//! UNIS takes writes without authentication in the usual deployments, so
//! whoever can write to it would otherwise choose the programs every host
//! runs, the files it opens and where its data goes. Only the local file
//! (and the root-only control socket) is trusted; its
//! `properties.configurations.trust` section lists, explicitly, the
//! exceptions:
//!
//! ```json
//! "trust": {
//!   "programs": ["/usr/lib/nagios/plugins/check_load",
//!                {"path": "/usr/bin/ping", "args": ["-c", "[0-9]+", "[a-z0-9.-]+"]},
//!                "/usr/lib/nagios/plugins/"],
//!   "paths": ["/var/lib/blipp/data"],
//!   "urls": ["https://ms.example.org:8888/"]
//! }
//! ```
//!
//! A program is an absolute path, or a directory ending in `/` for any
//! program directly in it; `args`, when given, are regular expressions
//! that each whole argument must match, one per argument;
//! `environment` lists the variables a remote configuration may set for
//! it. `paths` are directories under which a remote configuration may
//! name files and directories; `urls` are prefixes of the UNIS and MS URLs
//! it may send data to, besides the local file's own `unis_url` and
//! `ms_url`s. The policy is never taken from the network and never
//! written to UNIS.
//!
//! This module holds the policy and its matching rules only: no I/O but
//! the look-up of a program in `PATH` ([`resolve_program`]).

use std::path::{Component, Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ConfigError;

/// The keys of `properties.configurations` that only the local file sets:
/// the policy itself, how commands are contained, and `prometheus` (files
/// blippd reads, addresses it listens on or sends to, credentials: the
/// scrape endpoint's and remote write's). A
/// remote configuration can never change them, and blippd never writes
/// them to UNIS.
pub const LOCAL_ONLY: [&str; 4] = ["trust", "command_user", "command_limits", "prometheus"];

/// Where the policy sits in the service object.
const POINTER: &str = "/properties/configurations/trust";

/// One allowed program.
#[derive(Clone, Debug)]
pub struct ProgramRule {
    /// An absolute path, or a directory (ending in `/`) whose programs are
    /// allowed.
    target: String,
    /// One pattern per argument, anchored; `None` allows any arguments.
    args: Option<Vec<Regex>>,
    /// Environment variables a remote configuration may set.
    environment: Vec<String>,
}

/// The local trust policy.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    programs: Vec<ProgramRule>,
    paths: Vec<PathBuf>,
    /// Allowed URL prefixes: the `urls` list, then the local file's own
    /// destinations.
    urls: Vec<String>,
}

/// A part of a remote configuration the policy refused: left out of the
/// configuration in effect, logged once, shown by `blippcmd status`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Refusal {
    /// Where it came from (`UNIS service <id>`, `UNIS measurement <id>`).
    pub origin: String,
    /// JSON pointer of the refused part, in that record.
    pub pointer: String,
    /// The refused value, as JSON (shortened when long).
    pub value: String,
    /// The rule that refused it.
    pub rule: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: {} refused: {}",
            self.origin, self.pointer, self.value, self.rule
        )
    }
}

impl Refusal {
    /// A refusal of `value` at `pointer`.
    pub fn new(origin: &str, pointer: &str, value: &Value, rule: impl Into<String>) -> Self {
        Self {
            origin: origin.to_owned(),
            pointer: pointer.to_owned(),
            value: shorten(value.to_string()),
            rule: rule.into(),
        }
    }
}

/// Values are quoted in one log line: long ones are cut.
fn shorten(mut text: String) -> String {
    const MAX: usize = 160;
    if text.len() > MAX {
        let cut = (0..=MAX - 3)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push_str("...");
    }
    // One line whatever the value holds.
    text.escape_debug().to_string().replace("\\\"", "\"")
}

/// What a program probe would run: its argument vector, the program
/// resolved to the file that would be executed, and the variables it adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// `argv[0]` resolved through `PATH` when it has no `/`.
    pub argv: Vec<String>,
    /// The probe's `environment` entries.
    pub env: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ProgramEntry {
    Path(String),
    Rule {
        path: String,
        args: Option<Vec<String>>,
        #[serde(default)]
        environment: Vec<String>,
    },
}

#[derive(Deserialize, Default)]
struct PolicyKeys {
    #[serde(default)]
    programs: Vec<ProgramEntry>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    urls: Vec<String>,
}

/// True for an absolute path without `.` or `..` components: what it
/// names does not depend on how it is read.
fn plain_absolute(path: &str) -> bool {
    let p = Path::new(path);
    p.is_absolute()
        && !path.contains("//")
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

impl Policy {
    /// The policy of the local configuration `doc` (built-in defaults <
    /// file < command line). `origin` names the file in errors.
    pub fn from_local(origin: &str, doc: &Value) -> Result<Self, ConfigError> {
        let keys: PolicyKeys = match doc.pointer(POINTER) {
            None => PolicyKeys::default(),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| ConfigError::invalid(origin, POINTER, v, e.to_string()))?,
        };
        let mut policy = Policy::default();
        for (i, entry) in keys.programs.into_iter().enumerate() {
            let pointer = format!("{POINTER}/programs/{i}");
            let (target, args, environment) = match entry {
                ProgramEntry::Path(p) => (p, None, Vec::new()),
                ProgramEntry::Rule {
                    path,
                    args,
                    environment,
                } => (path, args, environment),
            };
            let bare = target.strip_suffix('/').unwrap_or(&target);
            if !plain_absolute(if bare.is_empty() { "/" } else { bare }) {
                return Err(ConfigError::invalid(
                    origin,
                    &format!("{pointer}/path"),
                    &Value::String(target),
                    "an absolute path without . or .. (a directory ends in /)",
                ));
            }
            let args = match args {
                None => None,
                Some(patterns) => Some(
                    patterns
                        .iter()
                        .enumerate()
                        .map(|(j, p)| {
                            Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                                ConfigError::invalid(
                                    origin,
                                    &format!("{pointer}/args/{j}"),
                                    &Value::String(p.clone()),
                                    format!("a regular expression: {}", super::regex_error(&e)),
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            policy.programs.push(ProgramRule {
                target,
                args,
                environment,
            });
        }
        for (i, p) in keys.paths.into_iter().enumerate() {
            let bare = p.trim_end_matches('/');
            if !plain_absolute(if bare.is_empty() { "/" } else { bare }) {
                return Err(ConfigError::invalid(
                    origin,
                    &format!("{POINTER}/paths/{i}"),
                    &Value::String(p),
                    "an absolute directory without . or ..",
                ));
            }
            policy.paths.push(PathBuf::from(bare));
        }
        for (i, u) in keys.urls.into_iter().enumerate() {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(ConfigError::invalid(
                    origin,
                    &format!("{POINTER}/urls/{i}"),
                    &Value::String(u),
                    "an http:// or https:// URL prefix",
                ));
            }
            policy.urls.push(u);
        }
        // The local file's own destinations are trusted already.
        policy.urls.extend(local_urls(doc));
        Ok(policy)
    }

    /// Whether a remote configuration may make blippd run `inv`; the
    /// reason when not.
    pub fn allows_program(&self, inv: &Invocation) -> Result<(), String> {
        let Some(program) = inv.argv.first() else {
            return Err("no program".to_owned());
        };
        if !plain_absolute(program) {
            return Err(format!(
                "{program} is not found as an absolute path (PATH is searched with the probe's environment)"
            ));
        }
        let mut why = format!("trust.programs of the local file does not list {program}");
        for rule in &self.programs {
            let listed = match rule.target.strip_suffix('/') {
                Some(dir) => Path::new(program).parent() == Some(Path::new(dir)),
                None => rule.target == *program,
            };
            if !listed {
                continue;
            }
            if let Some(patterns) = &rule.args {
                let args = &inv.argv[1..];
                let fits = patterns.len() == args.len()
                    && patterns.iter().zip(args).all(|(p, a)| p.is_match(a));
                if !fits {
                    why = format!(
                        "the arguments {args:?} do not match trust.programs' pattern for {}",
                        rule.target
                    );
                    continue;
                }
            }
            if let Some((name, _)) = inv
                .env
                .iter()
                .find(|(name, _)| !rule.environment.contains(name))
            {
                why = format!(
                    "trust.programs does not let a remote configuration set {name} for {}",
                    rule.target
                );
                continue;
            }
            return Ok(());
        }
        Err(why)
    }

    /// Whether a remote configuration may name the file or directory
    /// `path`; the reason when not.
    pub fn allows_path(&self, path: &Value) -> Result<(), String> {
        let Some(text) = path.as_str() else {
            return Err("trust.paths allows path names only".to_owned());
        };
        if !plain_absolute(text) {
            return Err("not an absolute path without . or ..".to_owned());
        }
        if self
            .paths
            .iter()
            .any(|dir| Path::new(text).starts_with(dir))
        {
            Ok(())
        } else {
            Err(format!(
                "trust.paths of the local file has no directory holding {text}"
            ))
        }
    }

    /// Whether a remote configuration may send data to `url`; the reason
    /// when not.
    pub fn allows_url(&self, url: &Value) -> Result<(), String> {
        let Some(text) = url.as_str() else {
            return Err("trust.urls allows URLs only".to_owned());
        };
        let fits = |prefix: &str| {
            text == prefix
                || text.starts_with(prefix)
                    && (prefix.ends_with('/') || text[prefix.len()..].starts_with('/'))
        };
        if self.urls.iter().any(|p| fits(p)) {
            Ok(())
        } else {
            Err(format!(
                "neither trust.urls nor the local unis_url and ms_url cover {text}"
            ))
        }
    }
}

/// The `unis_url` and every `ms_url` of the local configuration.
fn local_urls(doc: &Value) -> Vec<String> {
    let conf = doc.pointer("/properties/configurations");
    let mut urls: Vec<String> = Vec::new();
    let mut take = |v: Option<&Value>| {
        if let Some(s) = v.and_then(Value::as_str) {
            urls.push(s.to_owned());
        }
    };
    take(conf.and_then(|c| c.get("unis_url")));
    take(conf.and_then(|c| c.pointer("/probe_defaults/ms_url")));
    if let Some(Value::Object(probes)) = conf.and_then(|c| c.get("probes")) {
        for p in probes.values() {
            take(p.get("ms_url"));
        }
    }
    urls
}

/// The file `program` names: itself when it holds a `/`, else the first
/// executable regular file of that name in the directories of `path`
/// (the `PATH` the command will run with), as `execvp` finds it. `None`
/// when there is none.
pub fn resolve_program(program: &str, path: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    if program.contains('/') {
        return Some(program.to_owned());
    }
    if program.is_empty() {
        return None;
    }
    path.split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| format!("{}/{program}", dir.trim_end_matches('/')))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(trust: Value) -> Result<Policy, ConfigError> {
        Policy::from_local(
            "blipp.json",
            &json!({"properties": {"configurations": {"trust": trust,
                "unis_url": "http://unis.local:8888",
                "probes": {"m": {"probe_module": "mem", "ms_url": "http://ms.local:8888/ms"}}}}}),
        )
    }

    fn inv(argv: &[&str], env: &[(&str, &str)]) -> Invocation {
        Invocation {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let p = Policy::default();
        assert!(p.allows_program(&inv(&["/bin/true"], &[])).is_err());
        assert!(p.allows_path(&json!("/tmp/x")).is_err());
        assert!(p.allows_url(&json!("http://x/")).is_err());
    }

    #[test]
    fn programs_by_path_directory_arguments_and_environment() {
        let p = policy(json!({"programs": [
            "/usr/lib/nagios/plugins/",
            {"path": "/usr/bin/ping", "args": ["-c", "[0-9]+", "[a-z0-9.-]+"], "environment": ["LANG"]},
            "/usr/bin/uptime"
        ]}))
        .unwrap();
        assert!(
            p.allows_program(&inv(
                &["/usr/lib/nagios/plugins/check_load", "-w", "1"],
                &[]
            ))
            .is_ok()
        );
        // Only directly in the directory.
        assert!(
            p.allows_program(&inv(&["/usr/lib/nagios/plugins/sub/check"], &[]))
                .is_err()
        );
        assert!(
            p.allows_program(&inv(&["/usr/lib/nagios/plugins/../../../bin/sh"], &[]))
                .is_err()
        );
        assert!(
            p.allows_program(&inv(
                &["/usr/bin/ping", "-c", "3", "example.org"],
                &[("LANG", "C")]
            ))
            .is_ok()
        );
        let e = p
            .allows_program(&inv(&["/usr/bin/ping", "-c", "3", "a;b"], &[]))
            .unwrap_err();
        assert!(e.contains("do not match"), "{e}");
        // A pattern matches a whole argument, and the count is exact.
        assert!(
            p.allows_program(&inv(&["/usr/bin/ping", "-c", "3x", "a"], &[]))
                .is_err()
        );
        assert!(
            p.allows_program(&inv(&["/usr/bin/ping", "-c", "3", "a", "-f"], &[]))
                .is_err()
        );
        let e = p
            .allows_program(&inv(&["/usr/bin/uptime"], &[("LD_PRELOAD", "/tmp/x.so")]))
            .unwrap_err();
        assert!(e.contains("LD_PRELOAD"), "{e}");
        assert!(
            p.allows_program(&inv(&["/bin/sh", "-c", "id"], &[]))
                .is_err()
        );
        assert!(p.allows_program(&inv(&["uptime"], &[])).is_err());
    }

    #[test]
    fn paths_under_a_listed_directory_only() {
        let p = policy(json!({"paths": ["/var/lib/blipp/data/"]})).unwrap();
        assert!(p.allows_path(&json!("/var/lib/blipp/data/x.json")).is_ok());
        assert!(p.allows_path(&json!("/var/lib/blipp/data")).is_ok());
        assert!(p.allows_path(&json!("/var/lib/blipp/database")).is_err());
        assert!(
            p.allows_path(&json!("/var/lib/blipp/data/../../../../etc/cron.d/x"))
                .is_err()
        );
        assert!(p.allows_path(&json!("var/lib/blipp/data/x")).is_err());
        assert!(p.allows_path(&json!(true)).is_err());
    }

    #[test]
    fn urls_by_prefix_and_the_local_destinations() {
        let p = policy(json!({"urls": ["https://ms.example.org:8888"]})).unwrap();
        assert!(p.allows_url(&json!("https://ms.example.org:8888")).is_ok());
        assert!(
            p.allows_url(&json!("https://ms.example.org:8888/x"))
                .is_ok()
        );
        assert!(
            p.allows_url(&json!("https://ms.example.org:88889"))
                .is_err()
        );
        assert!(
            p.allows_url(&json!("https://ms.example.org:8888.evil.net/"))
                .is_err()
        );
        assert!(p.allows_url(&json!("http://unis.local:8888")).is_ok());
        assert!(p.allows_url(&json!("http://ms.local:8888/ms")).is_ok());
        assert!(p.allows_url(&json!("http://elsewhere:8888")).is_err());
    }

    #[test]
    fn a_bad_policy_is_one_line_naming_the_entry() {
        let e = policy(json!({"programs": [{"path": "/bin/x", "args": ["(unclosed"]}]}))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("blipp.json: /properties/configurations/trust/programs/0/args/0:"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        let e = policy(json!({"programs": ["bin/sh"]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute"), "{e}");
        let e = policy(json!({"paths": ["/a/../etc"]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/trust/paths/0"), "{e}");
        let e = policy(json!({"urls": ["ftp://x"]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/trust/urls/0"), "{e}");
    }

    #[test]
    fn programs_are_found_in_path_as_execvp_would() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("tool");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        let path = format!("/nonexistent:{}", dir.path().display());
        assert_eq!(resolve_program("tool", &path), None, "not executable");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            resolve_program("tool", &path).as_deref(),
            Some(bin.to_str().unwrap())
        );
        assert_eq!(resolve_program("./tool", &path).as_deref(), Some("./tool"));
        assert_eq!(resolve_program("tool", "relative/dir"), None);
    }

    #[test]
    fn refusals_are_one_line() {
        let r = Refusal::new("UNIS service s", "/p", &json!("a\nb\"c"), "why");
        assert!(!r.to_string().contains('\n'), "{r}");
        let long = Refusal::new("o", "/p", &json!("x".repeat(1000)), "why");
        assert!(long.value.len() < 200, "{}", long.value);
    }
}
