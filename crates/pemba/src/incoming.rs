//! Accepted TCP connections, as both of a node's plaintext ports serve them.

use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};

/// The connections `listener` accepts, with TCP_NODELAY set: small messages (an answer, a Raft
/// acknowledgement) go out at once. Without it, Nagle's algorithm holds one back until the
/// peer's delayed ACK of the previous one, some 40 ms on Linux: the tail of every request
/// that waits on such a message.
pub fn without_delay(listener: TcpListener) -> impl Stream<Item = std::io::Result<TcpStream>> {
    TcpListenerStream::new(listener).map(|connection| {
        if let Ok(stream) = &connection {
            let _ = stream.set_nodelay(true);
        }
        connection
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("an address");
        let mut incoming = Box::pin(without_delay(listener));
        let _client = TcpStream::connect(addr).await.expect("connects");
        let accepted = incoming
            .next()
            .await
            .expect("a connection")
            .expect("accepted");
        assert!(accepted.nodelay().expect("readable option"));
    }
}
