//! Tab completion of `blippcmd shell`: commands, then paths into the
//! running configuration (keys that are set, and keys the schema allows
//! where a key is being set or made), then the values an `enum` allows.
//! Pure: the caller fetches the configuration (over the control socket,
//! at each Tab, so that it is never stale).

use serde_json::Value;

use super::keys;
use super::line::{COMMANDS, PATH_COMMANDS};
use super::path::{escape, resolve};

/// One candidate: what replaces the word, and what the list shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// What the list shows.
    pub display: String,
    /// What replaces the word being completed.
    pub replacement: String,
}

/// Where the word being completed starts in `line`, and its candidates.
/// `cwd` is the shell's current pointer, `config` the running
/// configuration (`None`: blippd did not answer; only commands complete).
pub fn complete(
    line: &str,
    pos: usize,
    cwd: &str,
    config: Option<&Value>,
    schema: &Value,
) -> (usize, Vec<Candidate>) {
    let head = line.get(..pos).unwrap_or(line);
    let start = head.rfind([' ', '\t']).map_or(0, |i| i + 1);
    let word = &head[start..];
    // The words before are whole; an open quote among them leaves nothing
    // sure to complete.
    let Ok(before) = shell_words::split(&head[..start]) else {
        return (start, Vec::new());
    };
    let Some((cmd, args)) = before.split_first() else {
        let found = COMMANDS
            .iter()
            .filter(|c| c.starts_with(word))
            .map(|c| Candidate {
                display: (*c).to_owned(),
                replacement: format!("{c} "),
            })
            .collect();
        return (start, found);
    };
    if !PATH_COMMANDS.contains(&cmd.as_str()) {
        return (start, Vec::new());
    }
    let Some(config) = config else {
        return (start, Vec::new());
    };
    let args: Vec<&String> = args.iter().filter(|a| *a != "-p").collect();
    let candidates = match (cmd.as_str(), args.as_slice()) {
        ("mkdir", []) if word.starts_with('-') => vec![Candidate {
            display: "-p".into(),
            replacement: "-p ".into(),
        }],
        ("set", [key]) => values(schema, config, &resolve(cwd, key), word),
        (_, []) => paths(cmd, word, cwd, config, schema),
        _ => Vec::new(),
    };
    (start, candidates)
}

/// The keys under the path typed so far (`word`), as pointers relative to
/// what was typed, objects ending with `/`.
fn paths(cmd: &str, word: &str, cwd: &str, config: &Value, schema: &Value) -> Vec<Candidate> {
    let (dir, partial) = word.rfind('/').map_or(("", word), |i| word.split_at(i + 1));
    let base = resolve(cwd, dir);
    let set: Vec<(String, bool)> = match config.pointer(&base) {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.is_object())).collect(),
        _ => Vec::new(),
    };
    let mut found: Vec<(String, bool)> = match cmd {
        // Only what exists can be gone to, listed or removed.
        "cd" => set.into_iter().filter(|(_, object)| *object).collect(),
        "ls" | "lsd" | "show" | "del" => set,
        // Setting or making a key: also what the schema allows there.
        _ => {
            let mut all = set;
            for (k, object) in keys::allowed(schema, config, &base) {
                if !all.iter().any(|(have, _)| *have == k) && (cmd != "mkdir" || object) {
                    all.push((k, object));
                }
            }
            all
        }
    };
    found.retain(|(k, _)| escape(k).starts_with(partial));
    found.sort();
    found
        .into_iter()
        .map(|(k, object)| {
            let token = format!("{}{}", escape(&k), if object { "/" } else { "" });
            Candidate {
                display: token.clone(),
                replacement: quote(&format!("{dir}{token}")),
            }
        })
        .collect()
}

/// The values the schema allows for `pointer`.
fn values(schema: &Value, config: &Value, pointer: &str, word: &str) -> Vec<Candidate> {
    keys::values(schema, config, pointer)
        .into_iter()
        .filter(|v| v.starts_with(word))
        .map(|v| Candidate {
            replacement: quote(&v),
            display: v,
        })
        .collect()
}

fn quote(text: &str) -> String {
    shell_words::quote(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        serde_json::from_str(crate::config::schema::SCHEMA_TEXT).unwrap_or_default()
    }

    fn config() -> Value {
        json!({"status": "ON", "properties": {"configurations": {"probes": {
            "cpu": {"probe_module": "cpu", "schedule_params": {"every": 5}},
            "cmd x": {"probe_module": "cmd", "command": "true"},
            "mem": {"probe_module": "mem"}
        }}}})
    }

    fn shown(line: &str, cwd: &str) -> (usize, Vec<String>) {
        let (start, c) = complete(line, line.len(), cwd, Some(&config()), &schema());
        (start, c.into_iter().map(|c| c.replacement).collect())
    }

    #[test]
    fn commands_first() {
        assert_eq!(
            shown("s", ""),
            (0, vec!["set ".into(), "show ".into(), "status ".into()])
        );
        assert_eq!(shown("mk", ""), (0, vec!["mkdir ".into()]));
        assert_eq!(shown("status ", "").1, Vec::<String>::new());
    }

    #[test]
    fn cd_completes_objects_only() {
        assert_eq!(shown("cd pro", ""), (3, vec!["properties/".into()]));
        assert_eq!(
            shown("cd properties/configurations/probes/", ""),
            (
                3,
                vec![
                    "'properties/configurations/probes/cmd x/'".into(),
                    "properties/configurations/probes/cpu/".into(),
                    "properties/configurations/probes/mem/".into()
                ]
            )
        );
        assert_eq!(
            shown("cd ", "/properties/configurations/probes/cpu"),
            (3, vec!["schedule_params/".into()])
        );
        assert_eq!(
            shown("cd ../m", "/properties/configurations/probes/cpu"),
            (3, vec!["../mem/".into()])
        );
    }

    #[test]
    fn ls_and_del_complete_what_is_set() {
        assert_eq!(
            shown("del ", "/properties/configurations/probes/cpu").1,
            vec!["probe_module", "schedule_params/"]
        );
        assert_eq!(shown("ls st", "").1, vec!["status"]);
    }

    #[test]
    fn set_and_mkdir_complete_what_the_schema_allows() {
        let (_, set) = shown("set sche", "/properties/configurations/probes/mem");
        assert_eq!(set, vec!["schedule_params/"]);
        let (_, set) = shown(
            "set schedule_params/ev",
            "/properties/configurations/probes/mem",
        );
        assert_eq!(set, vec!["schedule_params/every"]);
        let (_, re) = shown("set re", "/properties/configurations/probes/cmd x");
        assert!(re.contains(&"regex".to_owned()), "{re:?}");
        let (_, mk) = shown("mkdir -p ", "/properties/configurations/probes/mem");
        assert!(mk.contains(&"schedule_params/".to_owned()), "{mk:?}");
        assert!(!mk.contains(&"status".to_owned()), "{mk:?}");
        assert_eq!(shown("mkdir -", "").1, vec!["-p "]);
    }

    #[test]
    fn set_completes_enum_values() {
        assert_eq!(
            shown("set mode e", "/properties/configurations/probes/cpu"),
            (9, vec!["ebpf".into()])
        );
        assert_eq!(
            shown(
                "set collection_schedule builtins.s",
                "/properties/configurations/probes/cpu"
            )
            .1,
            vec!["builtins.scheduled", "builtins.simple"]
        );
    }

    #[test]
    fn without_blippd_only_commands() {
        let (_, c) = complete("cd ", 3, "", None, &schema());
        assert!(c.is_empty());
        let (_, c) = complete("pw", 2, "", None, &schema());
        assert_eq!(c.len(), 1);
    }
}
