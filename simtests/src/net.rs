//! turmoil's simulated TCP, plugged into tonic: a [`Dialer`] for the cluster port and client
//! channels, and a stream of accepted connections for servers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use hyper_util::rt::TokioIo;
use pemba_cluster::{ClusterError, Dialer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};

/// A lazily connecting channel to `addr` (`host:port`) over turmoil's network.
pub fn channel(addr: &str) -> Result<Channel, ClusterError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|source| ClusterError::BadAddress {
            addr: addr.to_string(),
            source,
        })?
        .connect_timeout(Duration::from_millis(500));
    let connector = tower::service_fn(|uri: Uri| async move {
        let authority = uri
            .authority()
            .map(|a| a.to_string())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host in the URI"))?;
        let stream = turmoil::net::TcpStream::connect(authority).await?;
        Ok::<_, io::Error>(TokioIo::new(stream))
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}

/// Dials peers over turmoil's network.
pub struct TurmoilDialer;

impl Dialer for TurmoilDialer {
    fn channel(&self, addr: &str) -> Result<Channel, ClusterError> {
        channel(addr)
    }
}

/// An accepted simulated connection, as tonic's server wants it.
pub struct Accepted(turmoil::net::TcpStream);

impl Connected for Accepted {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Accepted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The connections `listener` accepts (failed accepts are skipped).
pub fn incoming(
    listener: turmoil::net::TcpListener,
) -> impl Stream<Item = io::Result<Accepted>> + Send + 'static {
    futures_util::stream::unfold(listener, |listener| async move {
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                return Some((Ok(Accepted(stream)), listener));
            }
        }
    })
}
