//! The `prometheus` section of `properties.configurations`: only the local
//! file sets it (the trust policy keeps it from UNIS, and blippd never
//! writes it back), because its keys name files blippd reads and an
//! address it listens on.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::ConfigError;

/// The default port: near the exporters' range, not node_exporter's 9100,
/// which often runs beside blippd.
pub const DEFAULT_PORT: u16 = 9787;

/// The path the exposition is served at.
pub const PATH: &str = "/metrics";

/// Where the section sits.
pub const POINTER: &str = "/properties/configurations/prometheus";

/// `prometheus`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prometheus {
    /// The scrape endpoint; none when not set.
    pub scrape: Option<Scrape>,
    /// `remote_write`, read by [`crate::config::remote_write`].
    #[serde(default)]
    pub remote_write: Option<serde::de::IgnoredAny>,
}

/// `prometheus.scrape`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scrape {
    /// The address to listen on: loopback unless the file says otherwise.
    #[serde(default = "loopback")]
    pub listen: IpAddr,
    /// The port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Serve over TLS with this certificate and key.
    pub tls: Option<TlsFiles>,
    /// Require this user and the password in a file.
    pub basic_auth: Option<BasicAuth>,
    /// Require `Authorization: Bearer` with the token in this file.
    pub bearer_token_file: Option<PathBuf>,
}

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

fn default_port() -> u16 {
    DEFAULT_PORT
}

/// `prometheus.scrape.tls`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `prometheus.scrape.basic_auth`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// A file holding the password (a final newline is not part of it).
    pub password_file: PathBuf,
}

impl Scrape {
    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::new(self.listen, self.port)
    }
}

/// The section of `conf` (`properties.configurations`), checked by the
/// schema already; errors name the file and pointer.
pub fn parse(
    origin: &str,
    conf: &serde_json::Map<String, serde_json::Value>,
) -> Result<Prometheus, ConfigError> {
    let Some(value) = conf.get("prometheus") else {
        return Ok(Prometheus::default());
    };
    Prometheus::deserialize(value)
        .map_err(|e| ConfigError::invalid(origin, POINTER, value, e.to_string()))
}

/// A secret read from a file: the file's text without its final newline.
pub fn read_secret(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let secret = text.strip_suffix('\n').unwrap_or(&text);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        return Err(std::io::Error::other("the file is empty"));
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_loopback_and_the_port() {
        let conf = json!({"prometheus": {"scrape": {}}});
        let p = parse("f", conf.as_object().unwrap()).unwrap();
        let s = p.scrape.unwrap();
        assert_eq!(s.address().to_string(), "127.0.0.1:9787");
        assert!(s.tls.is_none() && s.basic_auth.is_none() && s.bearer_token_file.is_none());
        let none = parse("f", json!({}).as_object().unwrap()).unwrap();
        assert_eq!(none.scrape, None);
    }

    #[test]
    fn a_bad_address_names_the_section() {
        let conf = json!({"prometheus": {"scrape": {"listen": "localhost"}}});
        let e = parse("/etc/blipp.json", conf.as_object().unwrap()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/etc/blipp.json: /properties/configurations/prometheus: "),
            "{e}"
        );
    }
}
