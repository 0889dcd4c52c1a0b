//! `prometheus.remote_write`: where blippd sends every sample by
//! Prometheus remote write 1.0, read from the local file at start-up
//! (the trust policy keeps UNIS from setting it: a destination and the
//! files holding its credentials are the operator's to choose).
//!
//! The schema checks the shape; this module what it cannot: label names,
//! one entry per URL (each has its own spool directory, named after it).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::ConfigError;

const POINTER: &str = "/properties/configurations/prometheus/remote_write";

/// Samples per request when the entry does not say (Prometheus' own
/// `max_samples_per_send` default is 2000).
pub const DEFAULT_MAX_SAMPLES: usize = 2000;

/// How long a sample may wait for its request when the entry does not say.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5);

/// How long a request may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP basic authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The file holding the password (read at start-up).
    pub password_file: PathBuf,
}

/// One remote-write destination.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteWrite {
    /// Where to POST.
    pub url: String,
    /// Labels added to every series (a series' own label of the same name
    /// wins), sorted by name.
    pub external_labels: Vec<(String, String)>,
    /// At most this many samples per request.
    pub batch_max_samples: usize,
    /// A sample waits at most this long before its request is sent.
    pub batch_max_age: Duration,
    /// How long a request may take.
    pub timeout: Duration,
    /// A file holding a bearer token.
    pub bearer_token_file: Option<PathBuf>,
    /// Basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// A CA bundle to verify the server with, instead of the system's.
    pub ca_file: Option<PathBuf>,
}

impl RemoteWrite {
    /// The spool directory's name under `<spool_dir>/remote_write/`: the
    /// URL with every byte outside `[A-Za-z0-9.-]` as `_`, so that one
    /// destination finds its own samples again after a restart, whatever
    /// the order of the entries.
    pub fn spool_name(&self) -> String {
        self.url
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
                    char::from(b)
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// A Prometheus label name that is not reserved (`__` is).
fn label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

fn seconds(v: &Value) -> Option<Duration> {
    v.as_f64()
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// The destinations of `conf` (`properties.configurations`), checked.
pub fn parse(origin: &str, conf: &Map<String, Value>) -> Result<Vec<RemoteWrite>, ConfigError> {
    let Some(list) = conf.get("prometheus").and_then(|p| p.get("remote_write")) else {
        return Ok(Vec::new());
    };
    let Some(list) = list.as_array() else {
        return Err(ConfigError::invalid(
            origin,
            POINTER,
            list,
            "expected an array of destinations",
        ));
    };
    let mut out: Vec<RemoteWrite> = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let at = |key: &str| format!("{POINTER}/{i}/{key}");
        let get = |key: &str| entry.get(key);
        let path = |key: &str| get(key).and_then(Value::as_str).map(PathBuf::from);
        let url = get("url").and_then(Value::as_str).ok_or_else(|| {
            ConfigError::invalid(
                origin,
                &format!("{POINTER}/{i}"),
                entry,
                "expected an object with a url",
            )
        })?;
        if let Some(other) = out.iter().position(|d| d.url == url) {
            return Err(ConfigError::invalid(
                origin,
                &at("url"),
                &Value::from(url),
                format!("expected a URL no other entry has (entry {other} has it)"),
            ));
        }
        let mut external_labels = Vec::new();
        if let Some(Value::Object(labels)) = get("external_labels") {
            for (name, value) in labels {
                let pointer = at(&format!("external_labels/{name}"));
                if !label_name(name) {
                    return Err(ConfigError::invalid(
                        origin,
                        &pointer,
                        value,
                        "expected a label name of [a-zA-Z_][a-zA-Z0-9_]*, not starting with __",
                    ));
                }
                let Some(text) = value.as_str() else {
                    return Err(ConfigError::invalid(
                        origin,
                        &pointer,
                        value,
                        "expected a string",
                    ));
                };
                external_labels.push((name.clone(), text.to_owned()));
            }
        }
        external_labels.sort();
        let duration = |key: &str, default: Duration| match get(key) {
            None => Ok(default),
            Some(v) => seconds(v).ok_or_else(|| {
                ConfigError::invalid(origin, &at(key), v, "expected a number of seconds above 0")
            }),
        };
        let batch_max_samples = match get("batch_max_samples") {
            None => DEFAULT_MAX_SAMPLES,
            Some(v) => v
                .as_u64()
                .filter(|n| *n > 0)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    ConfigError::invalid(
                        origin,
                        &at("batch_max_samples"),
                        v,
                        "expected an integer above 0",
                    )
                })?,
        };
        let basic_auth = match get("basic_auth") {
            None => None,
            Some(v) => Some(BasicAuth {
                username: v
                    .get("username")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                password_file: v
                    .get("password_file")
                    .and_then(Value::as_str)
                    .map(PathBuf::from)
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            origin,
                            &at("basic_auth"),
                            v,
                            "expected an object with username and password_file",
                        )
                    })?,
            }),
        };
        let bearer_token_file = path("bearer_token_file");
        if bearer_token_file.is_some() && basic_auth.is_some() {
            return Err(ConfigError::invalid(
                origin,
                &at("bearer_token_file"),
                &entry["bearer_token_file"],
                "expected bearer_token_file or basic_auth, not both",
            ));
        }
        out.push(RemoteWrite {
            url: url.to_owned(),
            external_labels,
            batch_max_samples,
            batch_max_age: duration("batch_max_age", DEFAULT_MAX_AGE)?,
            timeout: duration("timeout", DEFAULT_TIMEOUT)?,
            bearer_token_file,
            basic_auth,
            ca_file: path("ca_file"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(v: Value) -> Map<String, Value> {
        json!({ "prometheus": { "remote_write": v } })
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn entries_with_defaults_and_sorted_labels() {
        let d = parse(
            "f",
            &conf(json!([
                {"url": "http://p:9090/api/v1/write", "external_labels": {"site": "a", "host": "h"}},
                {"url": "https://m/api/v1/push", "batch_max_samples": 500, "batch_max_age": 0.5,
                 "basic_auth": {"username": "u", "password_file": "/etc/blipp/pw"},
                 "ca_file": "/etc/blipp/ca.pem"}
            ])),
        )
        .unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[0].external_labels,
            [("host".into(), "h".into()), ("site".into(), "a".into())]
        );
        assert_eq!(
            (d[0].batch_max_samples, d[0].batch_max_age),
            (DEFAULT_MAX_SAMPLES, DEFAULT_MAX_AGE)
        );
        assert_eq!(d[1].batch_max_age, Duration::from_millis(500));
        assert_eq!(d[1].basic_auth.as_ref().unwrap().username, "u");
        assert_eq!(d[0].spool_name(), "http___p_9090_api_v1_write");
        assert!(parse("f", &Map::new()).unwrap().is_empty());
    }

    #[test]
    fn what_the_schema_cannot_say_is_one_line() {
        let e = parse(
            "f",
            &conf(json!([{"url": "http://p/w"}, {"url": "http://p/w"}])),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "f: /properties/configurations/prometheus/remote_write/1/url: \"http://p/w\" is invalid: expected a URL no other entry has (entry 0 has it)"
        );
        let e = parse(
            "f",
            &conf(json!([{"url": "http://p/w", "external_labels": {"__name__": "x"}}])),
        )
        .unwrap_err();
        assert!(e.to_string().contains("external_labels/__name__"), "{e}");
        let e = parse(
            "f",
            &conf(json!([{"url": "http://p/w", "bearer_token_file": "/t",
                "basic_auth": {"username": "u", "password_file": "/p"}}])),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
    }
}
