//! The three files a node's cluster port needs (its certificate chain, its key, the CA bundle
//! it trusts) and the server and client TLS configurations made from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{version, ClientConfig, RootCertStore, ServerConfig};

use crate::error::TlsError;

/// Where the cluster port's TLS files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    /// PEM certificate chain, leaf first. It must name the node's cluster address (a DNS or IP
    /// subject alternative name) and allow both server and client authentication.
    pub cert: PathBuf,
    /// PEM private key of the leaf certificate.
    pub key: PathBuf,
    /// PEM bundle of the CA certificates peers' certificates must chain to (during a CA
    /// rotation, the old and the new one).
    pub ca: PathBuf,
}

/// The files' bytes as read, compared on each reload to see whether anything changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileBytes {
    cert: Vec<u8>,
    key: Vec<u8>,
    ca: Vec<u8>,
}

impl FileBytes {
    /// Reads the three files (small: a blocking read is fine off the async runtime).
    pub(crate) fn read(paths: &TlsPaths) -> Result<FileBytes, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        Ok(FileBytes {
            cert: read(&paths.cert)?,
            key: read(&paths.key)?,
            ca: read(&paths.ca)?,
        })
    }
}

/// Server and client configurations made from one reading of the files. Both require TLS 1.3,
/// speak HTTP/2 (ALPN `h2`) and authenticate both ends against the CA bundle: the server asks
/// every client for a certificate; the client checks that the server's names the address it
/// dialed.
#[derive(Debug)]
pub struct Material {
    /// For the cluster port: requires and verifies a client certificate.
    pub server: Arc<ServerConfig>,
    /// For dialing peers: presents this node's certificate.
    pub client: Arc<ClientConfig>,
}

impl Material {
    /// Reads the files at `paths` and makes the configurations.
    pub fn load(paths: &TlsPaths) -> Result<Material, TlsError> {
        Material::from_bytes(paths, &FileBytes::read(paths)?)
    }

    pub(crate) fn from_bytes(paths: &TlsPaths, bytes: &FileBytes) -> Result<Material, TlsError> {
        let chain = certificates(&paths.cert, &bytes.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&bytes.key).map_err(|source| TlsError::Pem {
            path: paths.key.clone(),
            source,
        })?;
        let roots = Arc::new(roots(&paths.ca, &bytes.ca)?);
        let provider = Arc::new(ring::default_provider());
        let identity_error = |source| TlsError::Identity {
            cert: paths.cert.clone(),
            key: paths.key.clone(),
            source,
        };
        let verifier_error = |source| TlsError::Verifier {
            path: paths.ca.clone(),
            source,
        };

        let clients = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(verifier_error)?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&version::TLS13])
            .map_err(TlsError::Config)?
            .with_client_cert_verifier(clients)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(identity_error)?;
        server.alpn_protocols = vec![b"h2".to_vec()];

        let servers = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(verifier_error)?;
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&version::TLS13])
            .map_err(TlsError::Config)?
            .with_webpki_verifier(servers)
            .with_client_auth_cert(chain, key)
            .map_err(identity_error)?;
        client.alpn_protocols = vec![b"h2".to_vec()];

        Ok(Material {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// The certificates in the PEM `bytes` read from `path`: at least one.
fn certificates(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_path_buf(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certificates)
}

/// The CA bundle in `bytes`: every certificate in it is trusted.
fn roots(path: &Path, bytes: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(path, bytes)? {
        roots.add(certificate).map_err(|source| TlsError::BadCa {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}
