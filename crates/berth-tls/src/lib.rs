//! TLS configurations berth's parts share. For registries: the system's roots plus
//! the registry's own CA from a `certs.d/<host>/` directory (Docker's layout:
//! `*.crt` CAs, and `client.cert` with `client.key` for a client certificate); for
//! an engine's TCP socket, both sides (berthd's `--tlsverify`, the CLI's); for a
//! log driver's TLS connection (syslog over `tcp+tls`), the client side.

pub use rustls;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Invalid(PathBuf, String),
    #[error("TLS setup: {0}")]
    Rustls(String),
}

/// The PEM certificates in `path`.
pub fn certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|e| TlsError::Read(path.to_path_buf(), e))?;
    rustls_pemfile::certs(&mut &data[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid(path.to_path_buf(), e.to_string()))
}

/// The PEM private key in `path`.
pub fn private_key(path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, TlsError> {
    let data = std::fs::read(path).map_err(|e| TlsError::Read(path.to_path_buf(), e))?;
    rustls_pemfile::private_key(&mut &data[..])
        .map_err(|e| TlsError::Invalid(path.to_path_buf(), e.to_string()))?
        .ok_or_else(|| TlsError::Invalid(path.to_path_buf(), "no private key".into()))
}

/// A root store of the PEM CAs in `path`.
pub fn roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(path)? {
        roots
            .add(c)
            .map_err(|e| TlsError::Invalid(path.to_path_buf(), e.to_string()))?;
    }
    Ok(roots)
}

/// The server side of an engine's TCP socket (berthd `--tls`): its certificate,
/// and with `client_ca` (`--tlsverify`) client certificates required and checked
/// against that CA alone.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider,
            )
            .build()
            .map_err(|e| TlsError::Invalid(ca.to_path_buf(), e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs(cert)?, private_key(key)?)
        .map_err(|e| TlsError::Invalid(cert.to_path_buf(), e.to_string()))?;
    Ok(Arc::new(config))
}

/// The client side of an engine's TCP socket (`--tlsverify`): the server checked
/// against `ca`, and a client certificate when given.
pub fn engine_client_config(
    ca: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let roots = match ca {
        Some(ca) => roots(ca)?,
        None => {
            let mut r = rustls::RootCertStore::empty();
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = r.add(c);
            }
            r
        }
    };
    let builder = builder.with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(certs(cert)?, private_key(key)?)
            .map_err(|e| TlsError::Invalid(cert.to_path_buf(), e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
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
            client = Some((certs(&cert)?, private_key(&key)?));
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

/// A client for a service named by the user's own files (syslog's
/// `syslog-tls-ca-cert`, `-cert`, `-key`, `-skip-verify`): the CA given, else the
/// system's roots; a client certificate when given; no verification at all only
/// when asked.
pub fn files_client_config(
    ca: Option<&Path>,
    client: Option<(&Path, &Path)>,
    skip_verify: bool,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
    } else {
        let roots = match ca {
            Some(ca) => roots(ca)?,
            None => {
                let mut r = rustls::RootCertStore::empty();
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = r.add(c);
                }
                r
            }
        };
        builder.with_root_certificates(roots)
    };
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(certs(cert)?, private_key(key)?)
            .map_err(|e| TlsError::Invalid(cert.to_path_buf(), e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
