//! The HTTP client with the original's TLS settings: `use_ssl` presents
//! the client certificate `ssl_cert` with its key `ssl_key` (servers that
//! require client authentication); `ssl_cafile` is the only CA trusted for
//! the servers, else the system's roots. TLS itself follows the URL
//! scheme (`https://`). The original turned verification off when no CA
//! file was given; blipp never does.

use std::path::Path;
use std::time::Duration;

use super::UnisError;
use crate::config::Tls;

/// Time to connect, and for a whole request: a server that hangs must not
/// hold samples back longer than this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

fn read(path: &Path, what: &str) -> Result<Vec<u8>, UnisError> {
    crate::bounded::read(path, crate::limits::PEM_FILE_MAX).map_err(|e| UnisError::TlsFile {
        path: path.to_owned(),
        reason: format!("cannot read the {what}: {e}"),
    })
}

/// Builds the client every UNIS and MS request goes through.
pub fn http_client(tls: &Tls) -> Result<reqwest::Client, UnisError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("blipp/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &tls.ssl_cafile {
        let pem = read(ca, "CA bundle")?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| UnisError::TlsFile {
                path: ca.clone(),
                reason: format!("not a PEM certificate bundle: {e}"),
            })?;
        if certs.is_empty() {
            return Err(UnisError::TlsFile {
                path: ca.clone(),
                reason: "holds no certificate".into(),
            });
        }
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if tls.use_ssl {
        let (Some(cert), Some(key)) = (&tls.ssl_cert, &tls.ssl_key) else {
            return Err(UnisError::TlsSettings(
                "use_ssl needs ssl_cert and ssl_key (the client certificate and its key, PEM)"
                    .into(),
            ));
        };
        let mut pem = read(cert, "client certificate")?;
        pem.push(b'\n');
        pem.extend(read(key, "client key")?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| UnisError::TlsFile {
            path: cert.clone(),
            reason: format!(
                "with {} not a PEM certificate and private key: {e}",
                key.display()
            ),
        })?;
        builder = builder.identity(identity);
    }
    builder.build().map_err(UnisError::Client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        let tls = Tls {
            ssl_cafile: Some(junk.clone()),
            ..Tls::default()
        };
        let e = http_client(&tls).unwrap_err().to_string();
        assert!(e.contains("junk.pem"), "{e}");
        let tls = Tls {
            use_ssl: true,
            ssl_cert: Some(dir.path().join("missing.pem")),
            ssl_key: Some(junk),
            ..Tls::default()
        };
        let e = http_client(&tls).unwrap_err().to_string();
        assert!(
            e.contains("missing.pem") && e.contains("cannot read"),
            "{e}"
        );
        let tls = Tls {
            use_ssl: true,
            ..Tls::default()
        };
        assert!(matches!(http_client(&tls), Err(UnisError::TlsSettings(_))));
        assert!(http_client(&Tls::default()).is_ok());
    }
}
