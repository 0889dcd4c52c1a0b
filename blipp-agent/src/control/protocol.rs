//! The control socket's wire format: one JSON request per line from the
//! client, one JSON response per line from blippd.
//!
//! Requests are parsed strictly (unknown requests and unknown fields are
//! refused, lines are limited to [`MAX_LINE`] bytes): the socket is a
//! privileged process's attack surface. Responses are read leniently by
//! blippcmd, so that an older client works with a newer blippd.
//!
//! ```text
//! {"request":"status"}
//! {"ok":{"version":"0.1.0","pid":4242,"uptime_s":12.5,...}}
//! {"request":"set","pointer":"/properties/configurations/probes/cpu/schedule_params/every","value":1}
//! {"ok":{"restarted":["cpu"],...}}
//! {"request":"probe","action":"stop","name":"gpu"}
//! {"error":"no probe named \"gpu\" in the running configuration"}
//! {"request":"top"}
//! {"ok":{"status":{...},"series":[{"probe":"cpu","subject":"node","eventType":"...","source":"proc","points":[{"ts":...,"value":0.12}]}]}}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest request or response line, newline included. A whole probe
/// object fits many times over; anything longer is refused unread.
pub const MAX_LINE: usize = 64 * 1024;

/// The longest response line blippcmd reads (a large configuration, a
/// full tail).
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// What to do with one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeAction {
    /// Stop it: its status becomes OFF (pending samples are flushed).
    Stop,
    /// Start it: its status becomes ON.
    Start,
    /// Stop it and build it again from its configuration.
    Restart,
}

/// One request. Empty variants are written `{"request":"status"}`; they
/// are struct variants so that extra fields are refused too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The agent's and every probe's state.
    Status {},
    /// The running configuration (the merged service object).
    Config {},
    /// Stop, start or restart a probe.
    Probe {
        /// What to do.
        action: ProbeAction,
        /// The probe's name.
        name: String,
    },
    /// Set the value at a JSON pointer of the running configuration.
    Set {
        /// Where, e.g. `/properties/configurations/probes/cpu/schedule_params/every`.
        pointer: String,
        /// The new value.
        value: Value,
    },
    /// Remove the key at a JSON pointer of the running configuration.
    Delete {
        /// Where.
        pointer: String,
    },
    /// Read the configuration file again and apply what changed (edits
    /// made through this socket are dropped).
    Reload {},
    /// Change the log filter: a level or `tracing` filter directives.
    LogLevel {
        /// `debug`, `INFO`, `blipp::arbiter=trace,info`, ...
        level: String,
    },
    /// A probe's latest samples.
    Tail {
        /// The probe's name.
        probe: String,
        /// How many (default 10, at most the ring's capacity).
        count: Option<usize>,
    },
    /// Read the service's configuration from UNIS now instead of at the
    /// next poll.
    UnisPoll {},
    /// The status and the last minute of the main quantities
    /// (`blippcmd top`).
    Top {},
}

/// One response: the result, or why the request was refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// The request's result.
    Ok(Value),
    /// Why it was refused; nothing changed.
    Error(String),
}

/// A probe that could not be (re)started, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The probe.
    pub probe: String,
    /// Why.
    pub error: String,
}

/// What a change of the running configuration did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Probes started.
    #[serde(default)]
    pub started: Vec<String>,
    /// Probes stopped.
    #[serde(default)]
    pub stopped: Vec<String>,
    /// Probes stopped and started again with their new configuration.
    #[serde(default)]
    pub restarted: Vec<String>,
    /// Probes the new configuration wants that could not be built (only
    /// when the change did not come from this socket: a change from the
    /// socket that breaks a probe is refused as a whole).
    #[serde(default)]
    pub failed: Vec<Failure>,
    /// Anything else the operator should know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Request {
    /// Parses one request line: a JSON object (serde would also take an
    /// array for a struct variant; only the documented form is accepted).
    pub fn parse(line: &str) -> Result<Self, serde_json::Error> {
        if !line.trim_start().starts_with('{') {
            return Err(serde::de::Error::custom(
                "expected a JSON object such as {\"request\":\"status\"}",
            ));
        }
        serde_json::from_str(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_round_trip() {
        let all = [
            Request::Status {},
            Request::Config {},
            Request::Probe {
                action: ProbeAction::Restart,
                name: "cpu".into(),
            },
            Request::Set {
                pointer: "/status".into(),
                value: json!("OFF"),
            },
            Request::Delete {
                pointer: "/properties/configurations/probes/x".into(),
            },
            Request::Reload {},
            Request::LogLevel {
                level: "debug".into(),
            },
            Request::Tail {
                probe: "cpu".into(),
                count: Some(3),
            },
            Request::UnisPoll {},
            Request::Top {},
        ];
        for r in all {
            let line = serde_json::to_string(&r).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(Request::parse(&line).unwrap(), r, "{line}");
        }
        assert_eq!(
            Request::parse(r#"{"request":"status"}"#).unwrap(),
            Request::Status {}
        );
        assert_eq!(
            Request::parse(r#"{"request":"tail","probe":"cpu"}"#).unwrap(),
            Request::Tail {
                probe: "cpu".into(),
                count: None
            }
        );
    }

    #[test]
    fn unknown_requests_and_fields_are_refused() {
        for bad in [
            r#"{"request":"status","extra":1}"#,
            r#"{"request":"probe","action":"stop","name":"cpu","as":"root"}"#,
            r#"{"request":"probe","action":"kill","name":"cpu"}"#,
            r#"{"request":"exec","command":"sh"}"#,
            r#"{"request":"set","pointer":"/status"}"#,
            r#"{"action":"stop"}"#,
            r#"["status"]"#,
            "status",
            "",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_are_one_key() {
        let ok = serde_json::to_string(&Response::Ok(json!({"a": 1}))).unwrap();
        assert_eq!(ok, r#"{"ok":{"a":1}}"#);
        let err = serde_json::to_string(&Response::Error("no".into())).unwrap();
        assert_eq!(err, r#"{"error":"no"}"#);
    }
}
