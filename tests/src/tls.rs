//! Certificates for the TLS tests, generated fresh by each test: a CA, a
//! server certificate for 127.0.0.1 and localhost, and a client certificate
//! the server accepts. Nothing is checked in: a key in the repository would
//! be a key anyone could use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;

/// PEM text of one certificate and its private key.
#[derive(Clone, Debug)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// Its PKCS#8 private key.
    pub key: String,
}

/// A CA with one server and two client certificates, as PEM text and as
/// files in a directory (the agent reads files).
#[derive(Clone, Debug)]
pub struct TlsMaterial {
    /// The CA certificate (no key: nothing else gets signed).
    pub ca_cert: String,
    /// The server's certificate (SANs 127.0.0.1 and localhost).
    pub server: Pem,
    /// A client certificate signed by the CA: what blippd presents.
    pub client: Pem,
    /// A client certificate signed by a different CA: the server must
    /// refuse it.
    pub stranger: Pem,
    /// Files: `ca.pem`, `client.pem`, `client.key`, `stranger.pem`,
    /// `stranger.key`.
    pub dir: PathBuf,
}

fn ca(name: &str) -> Result<CertifiedIssuer<'static, KeyPair>> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(CertifiedIssuer::self_signed(params, KeyPair::generate()?)?)
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Result<Pem> {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

impl TlsMaterial {
    /// Generates everything and writes the client-side files into `dir`.
    pub fn generate(dir: &Path) -> Result<Self> {
        let authority = ca("blipp test CA")?;
        let other = ca("someone else's CA")?;
        let server = leaf(
            &authority,
            "blipp test UNIS",
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let client = leaf(
            &authority,
            "blippd",
            &["blippd.test"],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let stranger = leaf(
            &other,
            "stranger",
            &["stranger.test"],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let material = TlsMaterial {
            ca_cert: authority.pem(),
            server,
            client,
            stranger,
            dir: dir.to_owned(),
        };
        for (name, text) in [
            ("ca.pem", &material.ca_cert),
            ("client.pem", &material.client.cert),
            ("client.key", &material.client.key),
            ("stranger.pem", &material.stranger.cert),
            ("stranger.key", &material.stranger.key),
        ] {
            std::fs::write(dir.join(name), text).with_context(|| format!("writing {name}"))?;
        }
        Ok(material)
    }

    /// A file written by [`TlsMaterial::generate`].
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The server side: this certificate, and client certificates required
    /// and verified against the CA.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs(&self.ca_cert)? {
            roots.add(cert)?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&provider),
        )
        .build()?;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(self.server.key.as_bytes())
            .context("server key")?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&self.server.cert)?, key)?;
        Ok(Arc::new(config))
    }
}

fn certs(pem: &str) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("PEM certificates")
}
