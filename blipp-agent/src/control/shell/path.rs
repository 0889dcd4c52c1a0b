//! Paths of `blippcmd shell`: JSON pointers typed relative to the current
//! one, as the original's `cd` took them.

use std::fmt::Write as _;

use serde_json::Value;

/// The pointer `path` names from `cwd` (both pointers, `""` the top): a
/// path starting with `/` is absolute, `..` goes up (not past the top),
/// `.` and empty parts stay.
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

/// The pointer one level up from `pointer`, and its last key as typed;
/// `None` for the top.
pub fn split_last(pointer: &str) -> Option<(&str, &str)> {
    pointer
        .rfind('/')
        .map(|i| (&pointer[..i], &pointer[i + 1..]))
}

/// A key as one token of a pointer (RFC 6901: `~` is `~0`, `/` is `~1`).
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
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
    fn last_key() {
        assert_eq!(split_last("/a/b"), Some(("/a", "b")));
        assert_eq!(split_last("/a"), Some(("", "a")));
        assert_eq!(split_last(""), None);
        assert_eq!(escape("a/b~c"), "a~1b~0c");
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
