//! Mutual TLS on the cluster port.
//!
//! Every node presents a certificate from the cluster's CA, as a server to the peers that dial
//! it and as a client to the peers it dials; each end checks the other's against the CA
//! bundle, and the dialing end checks that the certificate names the address it dialed (the
//! member's cluster address: a DNS name or an IP address). A certificate from another CA, an
//! expired one or one naming another address ends the handshake. On the accepting end, a Raft
//! message must come with a certificate naming its sender's cluster address
//! ([`CertificateNamesSender`]), so one node's certificate cannot speak for another. The
//! cluster secret is still required on every call, as a second factor.
//!
//! The files are re-read on change ([`PeerTls::watch`], and on SIGHUP in `pemba serve`), so a
//! node's certificate and the CA bundle rotate without a restart: new connections use the new
//! material; connections already open keep theirs until they close.
//!
//! The simulation does not use this crate: it supplies its own network to
//! [`pemba_cluster::NodeBuilder`].

mod acceptor;
mod dialer;
mod error;
mod material;
mod reload;
mod sender;

pub use acceptor::{incoming, HANDSHAKE_TIMEOUT};
pub use dialer::TlsDialer;
pub use error::{ConnectError, TlsError};
pub use material::{Material, TlsPaths};
pub use reload::{PeerTls, Reload};
pub use sender::CertificateNamesSender;
