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

/// What one connection through a [`RecordingRelay`] carried, each direction in order.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    pub from_client: Vec<u8>,
    pub from_server: Vec<u8>,
}

/// Relays connections to `listener`'s address on to `target` unchanged, keeping a copy of every
/// byte: what a wiretap between two nodes would see. Stops when dropped.
pub struct RecordingRelay {
    accepting: JoinHandle<()>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<std::sync::Arc<std::sync::Mutex<Recorded>>>>>,
}

impl RecordingRelay {
    pub fn start(listener: TcpListener, target: SocketAddr) -> RecordingRelay {
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recording = connections.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let record = std::sync::Arc::new(std::sync::Mutex::new(Recorded::default()));
                recording.lock().expect("not poisoned").push(record.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    let up = record.clone();
                    tokio::spawn(copy(in_read, out_write, move |b| {
                        up.lock()
                            .expect("not poisoned")
                            .from_client
                            .extend_from_slice(b)
                    }));
                    tokio::spawn(copy(out_read, in_write, move |b| {
                        record
                            .lock()
                            .expect("not poisoned")
                            .from_server
                            .extend_from_slice(b)
                    }));
                });
            }
        });
        RecordingRelay {
            accepting,
            connections,
        }
    }

    /// Every connection so far, as recorded up to now.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.connections
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|r| r.lock().expect("not poisoned").clone())
            .collect()
    }
}

impl Drop for RecordingRelay {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Copies `from` to `to`, showing each chunk to `record` first.
async fn copy(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut record: impl FnMut(&[u8])) {
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(read) = from.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        record(&buffer[..read]);
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
