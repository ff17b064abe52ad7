//! TLS on acceptor ports (`SocketUseSSL=Y`): loads the PEM certificate
//! chain, private key and optional client-certificate CA bundle named in the
//! settings into a rustls [`ServerConfig`]. It runs while the settings are
//! loaded, so `fixgw run` and `fixgw check-config` report a bad file alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// The TLS settings of one listening endpoint (every session on the port
/// must have the same).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsSettings {
    /// SocketCertificateFile: PEM certificate chain, ours first.
    pub certificate_file: PathBuf,
    /// SocketPrivateKeyFile: PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key_file: PathBuf,
    /// SocketClientCAFile: PEM CA bundle; when set, clients must present a
    /// certificate signed by one of these.
    pub client_ca_file: Option<PathBuf>,
}

/// TLS of a listening endpoint: what was configured and the loaded config.
#[derive(Debug, Clone)]
pub struct EndpointTls {
    /// The settings.
    pub settings: TlsSettings,
    /// Ready for a `tokio_rustls::TlsAcceptor`.
    pub config: Arc<ServerConfig>,
}

/// A file named by a TLS key that cannot be used.
#[derive(Debug)]
pub struct TlsFileError {
    /// The settings key naming the file.
    pub key: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl TlsSettings {
    /// Reads every file and builds the server configuration.
    pub fn load(&self) -> Result<EndpointTls, TlsFileError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = read_certificates("SocketCertificateFile", &self.certificate_file)?;
        let key_err = |message: String| TlsFileError {
            key: "SocketPrivateKeyFile",
            message,
        };
        let key =
            PrivateKeyDer::from_pem_slice(&read("SocketPrivateKeyFile", &self.private_key_file)?)
                .map_err(|e| {
                key_err(pem_message(
                    e,
                    "PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY",
                ))
            })?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| key_err(e.to_string()))?;
        let builder = match &self.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(file) => builder.with_client_cert_verifier(client_verifier(file, provider)?),
        };
        let config = builder.with_single_cert(certs, key).map_err(|e| {
            key_err(format!(
                "cannot be used with the certificate in {}: {e}",
                self.certificate_file.display()
            ))
        })?;
        Ok(EndpointTls {
            settings: self.clone(),
            config: Arc::new(config),
        })
    }
}

/// Clients must present a certificate signed by a CA in `file`.
fn client_verifier(
    file: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsFileError> {
    const KEY: &str = "SocketClientCAFile";
    let err = |message: String| TlsFileError { key: KEY, message };
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(KEY, file)? {
        roots
            .add(cert)
            .map_err(|e| err(format!("not a usable CA certificate: {e}")))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| err(e.to_string()))
}

fn read(key: &'static str, file: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(file).map_err(|e| TlsFileError {
        key,
        message: format!("cannot read: {e}"),
    })
}

/// Every CERTIFICATE block of a PEM file; at least one.
fn read_certificates(
    key: &'static str,
    file: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let bytes = read(key, file)?;
    let err = |message: String| TlsFileError { key, message };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(pem_message(e, "CERTIFICATE")))?;
    if certs.is_empty() {
        return Err(err(pem_message(pem::Error::NoItemsFound, "CERTIFICATE")));
    }
    Ok(certs)
}

fn pem_message(e: pem::Error, wanted: &str) -> String {
    match e {
        pem::Error::NoItemsFound => format!("no PEM {wanted} block found"),
        e => format!("invalid PEM: {e}"),
    }
}
