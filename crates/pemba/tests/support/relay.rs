//! A TCP relay that delays every byte by a fixed time in each direction: network latency
//! without the kernel's `netem` (which not every kernel has), keeping order and bandwidth.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

/// Relays connections to `listener`'s address on to `target`, delaying each direction by
/// `delay` (a round trip through it takes twice that). Stops when dropped.
pub struct DelayRelay {
    accepting: JoinHandle<()>,
}

impl DelayRelay {
    pub fn start(listener: TcpListener, target: SocketAddr, delay: Duration) -> DelayRelay {
        let accepting = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    tokio::spawn(delayed(in_read, out_write, delay));
                    tokio::spawn(delayed(out_read, in_write, delay));
                });
            }
        });
        DelayRelay { accepting }
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read.
async fn delayed(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (sender, mut receiver) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = receiver.recv().await {
            sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(read) = from.read(&mut buffer).await {
        if read == 0
            || sender
                .send((Instant::now() + delay, buffer[..read].to_vec()))
                .is_err()
        {
            break;
        }
    }
    drop(sender);
    let _ = writer.await;
}
