//! TLS: the server's rustls configuration from PEM files, and `fimlake certs self-signed`, which
//! writes a development CA and a server certificate signed by it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

/// `[tls]`: serve HTTPS with this certificate chain and key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM: the server certificate, then its intermediates.
    pub cert_file: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// The server side of TLS 1.2/1.3 with rustls' safe defaults (ring provider).
pub fn server_config(cfg: &TlsConfig) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = std::fs::read(&cfg.cert_file).with_context(|| format!("reading {}", cfg.cert_file.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&certs)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not PEM certificates", cfg.cert_file.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", cfg.cert_file.display());
    }
    let key = std::fs::read(&cfg.key_file).with_context(|| format!("reading {}", cfg.key_file.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key)
        .with_context(|| format!("{}: no PEM private key", cfg.key_file.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and the key do not form a valid pair")?;
    Ok(Arc::new(config))
}

/// Writes `ca.pem` (a development CA), `server.pem` and `server-key.pem` (a server certificate
/// for `hosts`, signed by that CA) into `dir`. The CA's key is not kept: nothing else can be
/// signed with it.
pub fn self_signed(dir: &Path, hosts: &[String]) -> anyhow::Result<()> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "fimlake development CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut server = CertificateParams::new(hosts.to_vec())?;
    server.distinguished_name.push(DnType::CommonName, hosts.first().map_or("fimlake", String::as_str));
    let cert = server.signed_by(&key, &issuer)?;
    let write = |name: &str, text: String| -> anyhow::Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };
    write("ca.pem", ca_cert.pem())?;
    write("server.pem", cert.pem())?;
    write("server-key.pem", key.serialize_pem())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("server-key.pem"), std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
