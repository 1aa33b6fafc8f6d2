//! Opening channels to peers: injected, so a simulation can supply its own network.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::error::ClusterError;

/// Opens gRPC channels to peers by address (`host:port`).
pub trait Dialer: Send + Sync + 'static {
    /// A channel to `addr`. It may connect lazily; connection failures surface on calls.
    fn channel(&self, addr: &str) -> Result<Channel, ClusterError>;
}

/// Plain TCP (HTTP/2 without TLS), connecting lazily.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpDialer;

impl Dialer for TcpDialer {
    fn channel(&self, addr: &str) -> Result<Channel, ClusterError> {
        Ok(peer_endpoint(addr)?.connect_lazy())
    }
}

/// The endpoint every dialer reaches the peer at `addr` (`host:port`) through: quick to give
/// up connecting, no Nagle delay, and keep-alives that notice a silently dead connection. The
/// scheme is `http`: a dialer that speaks TLS does so in its own connector.
pub fn peer_endpoint(addr: &str) -> Result<Endpoint, ClusterError> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|source| ClusterError::BadAddress {
            addr: addr.to_string(),
            source,
        })?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5)))
}
