//! The client side of the cluster port: connections to peers over TLS, each checked against
//! the CA and the address dialed.

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use pemba_cluster::{peer_endpoint, ClusterError, Dialer};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Uri};

use crate::error::ConnectError;
use crate::reload::PeerTls;

/// Dials peers over mutual TLS with the material current at each (re)connection.
#[derive(Debug, Clone)]
pub struct TlsDialer {
    tls: Arc<PeerTls>,
}

impl TlsDialer {
    /// A dialer that connects with `tls`'s material as it is at each connection.
    pub fn new(tls: Arc<PeerTls>) -> TlsDialer {
        TlsDialer { tls }
    }

    /// A channel to `addr`, connected now (for one-off clients such as `pemba cluster`).
    pub async fn connect(&self, addr: &str) -> Result<Channel, ClusterError> {
        peer_endpoint(addr)?
            .connect_with_connector(self.connector())
            .await
            .map_err(|source| ClusterError::Connect {
                addr: addr.to_string(),
                source,
            })
    }

    /// Opens each (re)connection of a channel with the material current at that moment.
    fn connector(
        &self,
    ) -> impl tower::Service<
        Uri,
        Response = TokioIo<TlsStream<TcpStream>>,
        Error = ConnectError,
        Future = impl Send,
    > + Clone
           + Send
           + 'static {
        let tls = self.tls.clone();
        tower::service_fn(move |uri: Uri| connect(tls.clone(), uri))
    }
}

impl Dialer for TlsDialer {
    fn channel(&self, addr: &str) -> Result<Channel, ClusterError> {
        Ok(peer_endpoint(addr)?.connect_with_connector_lazy(self.connector()))
    }
}

/// A TLS connection to `uri`'s host and port. The peer's certificate must chain to the CA and
/// name the host dialed (a DNS name, or an IP address as an IP subject alternative name).
async fn connect(
    tls: Arc<PeerTls>,
    uri: Uri,
) -> Result<TokioIo<TlsStream<TcpStream>>, ConnectError> {
    let host = uri.host().ok_or_else(|| ConnectError::NoHost {
        uri: uri.to_string(),
    })?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(80);
    let addr = format!("{host}:{port}");
    let name = ServerName::try_from(host.clone()).map_err(|source| ConnectError::BadName {
        host: host.clone(),
        source,
    })?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|source| ConnectError::Tcp {
            addr: addr.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let stream = TlsConnector::from(tls.client_config())
        .connect(name, tcp)
        .await
        .map_err(|source| ConnectError::Handshake { addr, source })?;
    Ok(TokioIo::new(stream))
}
