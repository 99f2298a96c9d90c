//! Trusting a private CA: the certificates of a PEM file besides the system's roots.

use std::path::{Path, PathBuf};

/// Why a client cannot be built or a request cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading the CA file {path}: {source}")]
    ReadCa { path: PathBuf, source: std::io::Error },
    #[error("the CA file {path} holds no PEM certificate{reason}")]
    InvalidCa { path: PathBuf, reason: String },
    #[error("building the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
    #[error("the server refused the records ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp { attempts: usize, last: String },
    #[error("the server's answer has no 'accepted' count: {0}")]
    Answer(String),
}

/// A reqwest client builder that also trusts the CA certificates in `ca_file` (PEM, one or more).
pub fn client_builder(ca_file: Option<&Path>) -> Result<reqwest::ClientBuilder, ClientError> {
    let mut builder = reqwest::Client::builder();
    let Some(path) = ca_file else { return Ok(builder) };
    let pem = std::fs::read(path).map_err(|source| ClientError::ReadCa { path: path.to_path_buf(), source })?;
    let invalid = |reason: String| ClientError::InvalidCa { path: path.to_path_buf(), reason };
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| invalid(format!(": {e}")))?;
    if certificates.is_empty() {
        return Err(invalid(String::new()));
    }
    for certificate in certificates {
        builder = builder.add_root_certificate(certificate);
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let e = client_builder(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_builder(Some(&empty)).unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        assert!(client_builder(None).is_ok());
    }
}
