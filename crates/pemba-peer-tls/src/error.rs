//! Why the cluster port's TLS material could not be used.

use std::path::PathBuf;

use thiserror::Error;

/// Why the certificate, key or CA files could not be made into a TLS configuration. A node
/// refuses to start on one; a reload that fails keeps the previous material.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not PEM.
    #[error("{path} is not PEM: {source}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate file holds no certificate.
    #[error("{path} holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks)")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A certificate of the CA bundle cannot be a trust anchor.
    #[error("CA certificate in {path} is unusable: {source}")]
    BadCa {
        /// The CA bundle.
        path: PathBuf,
        /// rustls's reason.
        source: tokio_rustls::rustls::Error,
    },
    /// The certificate and key do not make a usable identity (the key is not the
    /// certificate's, say: a rotation that replaced one file and not yet the other).
    #[error("the certificate {cert} with the key {key}: {source}")]
    Identity {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        source: tokio_rustls::rustls::Error,
    },
    /// No verifier of client certificates could be built from the CA bundle.
    #[error("verifying peers against {path}: {source}")]
    Verifier {
        /// The CA bundle.
        path: PathBuf,
        /// rustls's reason.
        source: tokio_rustls::rustls::server::VerifierBuilderError,
    },
    /// rustls refused the configuration.
    #[error("a TLS configuration: {0}")]
    Config(tokio_rustls::rustls::Error),
}

/// Why an outgoing connection to a peer failed (surfaces as UNAVAILABLE on the call that
/// needed it).
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The peer's URI has no host.
    #[error("`{uri}` names no host")]
    NoHost {
        /// The URI dialed.
        uri: String,
    },
    /// The host cannot be a certificate's name.
    #[error("`{host}` is neither a DNS name nor an IP address a certificate can name")]
    BadName {
        /// The host dialed.
        host: String,
        /// Why it is no name.
        source: rustls_pki_types::InvalidDnsNameError,
    },
    /// The TCP connection failed.
    #[error("connecting to {addr}: {source}")]
    Tcp {
        /// The address dialed.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS handshake failed: among other reasons, the peer's certificate is not from the
    /// CA, has expired or does not name `addr`.
    #[error("TLS handshake with {addr}: {source}")]
    Handshake {
        /// The address dialed.
        addr: String,
        /// The handshake's error.
        source: std::io::Error,
    },
}
