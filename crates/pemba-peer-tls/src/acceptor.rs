//! The server side of the cluster port: TCP connections that become TLS connections once the
//! client presents a certificate from the CA.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use crate::reload::PeerTls;

/// How long a new connection may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections accepted but not yet taken by the server.
const BACKLOG: usize = 64;

/// The TLS connections made on `listener`, for [`pemba_cluster::serve_peers`]. Each handshake
/// runs in a task of its own, so a slow or failing client holds up no other. A refused
/// handshake (no certificate, one from another CA, expired, not TLS at all) is logged with the
/// client's address and the reason, and the connection closed. The stream ends when the
/// listener fails for good; accepting stops once the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<PeerTls>,
) -> ReceiverStream<io::Result<TlsStream<TcpStream>>> {
    let (sender, receiver) = mpsc::channel(BACKLOG);
    tokio::spawn(accept_loop(listener, tls, sender));
    ReceiverStream::new(receiver)
}

async fn accept_loop(
    listener: TcpListener,
    tls: Arc<PeerTls>,
    sender: mpsc::Sender<io::Result<TlsStream<TcpStream>>>,
) {
    while !sender.is_closed() {
        let (stream, client) = match listener.accept().await {
            Ok(connection) => connection,
            Err(error) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(%error, "cluster port: accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = TlsAcceptor::from(tls.server_config());
        tokio::spawn(handshake(acceptor, stream, client, sender.clone()));
    }
}

async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    client: SocketAddr,
    sender: mpsc::Sender<io::Result<TlsStream<TcpStream>>>,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let _ = sender.send(Ok(stream)).await;
        }
        Ok(Err(error)) => tracing::warn!(
            %client,
            %error,
            "cluster port: refused a connection (TLS handshake failed)"
        ),
        Err(_) => tracing::warn!(
            %client,
            "cluster port: refused a connection (no TLS handshake within {HANDSHAKE_TIMEOUT:?})"
        ),
    }
}
