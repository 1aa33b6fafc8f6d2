//! Why the cluster port's TLS material could not be used.

use std::path::PathBuf;

use thiserror::Error;

/// Why the certificate, key or CA files could not be made into a TLS configuration. A node
/// refuses to start on one; a reload that fails keeps the previous material.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not PEM: {source}")]
    Pem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks)")]
    NoCertificate { path: PathBuf },
    #[error("CA certificate in {path} is unusable: {source}")]
    BadCa {
        path: PathBuf,
        source: tokio_rustls::rustls::Error,
    },
    /// The certificate and key do not make a usable identity (the key is not the
    /// certificate's, say: a rotation that replaced one file and not yet the other).
    #[error("the certificate {cert} with the key {key}: {source}")]
    Identity {
        cert: PathBuf,
        key: PathBuf,
        source: tokio_rustls::rustls::Error,
    },
    #[error("verifying peers against {path}: {source}")]
    Verifier {
        path: PathBuf,
        source: tokio_rustls::rustls::server::VerifierBuilderError,
    },
    #[error("a TLS configuration: {0}")]
    Config(tokio_rustls::rustls::Error),
}

/// Why an outgoing connection to a peer failed (surfaces as UNAVAILABLE on the call that
/// needed it).
#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("`{uri}` names no host")]
    NoHost { uri: String },
    #[error("`{host}` is neither a DNS name nor an IP address a certificate can name")]
    BadName {
        host: String,
        source: rustls_pki_types::InvalidDnsNameError,
    },
    #[error("connecting to {addr}: {source}")]
    Tcp {
        addr: String,
        source: std::io::Error,
    },
    /// The TLS handshake failed: among other reasons, the peer's certificate is not from the
    /// CA, has expired or does not name `addr`.
    #[error("TLS handshake with {addr}: {source}")]
    Handshake {
        addr: String,
        source: std::io::Error,
    },
}
