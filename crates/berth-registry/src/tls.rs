//! TLS for registries: the system's roots plus the registry's own CA from a
//! `certs.d/<host>/` directory (Docker's layout: `*.crt` CAs, and `client.cert` with
//! `client.key` for a client certificate).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Invalid(PathBuf, String),
    #[error("TLS setup: {0}")]
    Rustls(String),
}

fn certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|e| TlsError::Read(path.to_path_buf(), e))?;
    rustls_pemfile::certs(&mut &data[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid(path.to_path_buf(), e.to_string()))
}

/// The client configuration for `host` (`host[:port]`): system roots, then every
/// `*.crt` in each `<dir>/<host>/` of `certs_dirs`, and a client certificate when
/// `client.cert` and `client.key` are there.
pub fn client_config(
    host: &str,
    certs_dirs: &[PathBuf],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        let _ = roots.add(c);
    }
    let mut client: Option<(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )> = None;
    for base in certs_dirs {
        let dir = base.join(host);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in &names {
            if p.extension().is_some_and(|x| x == "crt") {
                for c in certs(p)? {
                    roots
                        .add(c)
                        .map_err(|e| TlsError::Invalid(p.clone(), e.to_string()))?;
                }
            }
        }
        let (cert, key) = (dir.join("client.cert"), dir.join("client.key"));
        if cert.exists() && key.exists() && client.is_none() {
            let data = std::fs::read(&key).map_err(|e| TlsError::Read(key.clone(), e))?;
            let k = rustls_pemfile::private_key(&mut &data[..])
                .map_err(|e| TlsError::Invalid(key.clone(), e.to_string()))?
                .ok_or_else(|| TlsError::Invalid(key.clone(), "no private key".into()))?;
            client = Some((certs(&cert)?, k));
        } else if cert.exists() != key.exists() {
            return Err(TlsError::Invalid(
                dir,
                "client.cert and client.key go together".into(),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::Rustls(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Accepts any certificate: Docker's `insecure-registries` over HTTPS.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// TLS without certificate verification, for insecure registries (as Docker does
/// for them: HTTPS first, unverified, then plain HTTP).
pub fn insecure_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    Arc::new(config)
}
