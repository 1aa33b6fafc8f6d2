//! A snapshot's encoded image in memory, as chunks: built and received without reallocating
//! (and copying) the whole image as it grows, sent to any number of followers without a copy,
//! read back as one stream.

use std::io::{self, Read, SeekFrom, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// The size of every chunk but the last.
const CHUNK: usize = 1 << 20;

/// A snapshot image: openraft's `SnapshotData`.
///
/// Invariants: every chunk but the last holds exactly [`CHUNK`] bytes, and `len` is their sum.
/// Clones share the chunks; [`SnapshotBytes::reader`] is such a clone positioned at the start,
/// and a write to a clone whose chunks are shared copies them first. A write goes at the
/// current position, which may not be past the end: a receiver writes each part where the
/// previous one ended, or again over what it already has (a part sent twice).
#[derive(Debug, Clone, Default)]
pub struct SnapshotBytes {
    chunks: Arc<Vec<Vec<u8>>>,
    len: u64,
    position: u64,
}

impl SnapshotBytes {
    /// The image's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the image has no bytes yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The same bytes, positioned at the start for reading.
    pub fn reader(&self) -> SnapshotBytes {
        SnapshotBytes {
            chunks: self.chunks.clone(),
            len: self.len,
            position: 0,
        }
    }
}

impl Read for SnapshotBytes {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut read = 0;
        while read < buf.len() && self.position < self.len {
            let at = self.position as usize;
            let (chunk, offset) = (&self.chunks[at / CHUNK], at % CHUNK);
            let n = (chunk.len() - offset).min(buf.len() - read);
            buf[read..read + n].copy_from_slice(&chunk[offset..offset + n]);
            read += n;
            self.position += n as u64;
        }
        Ok(read)
    }
}

impl Write for SnapshotBytes {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.position > self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a snapshot part at byte {} would leave a gap after byte {}",
                    self.position, self.len
                ),
            ));
        }
        let chunks = Arc::make_mut(&mut self.chunks);
        let mut written = 0;
        while written < data.len() {
            let at = self.position as usize;
            let (index, offset) = (at / CHUNK, at % CHUNK);
            if index == chunks.len() {
                chunks.push(Vec::with_capacity(CHUNK));
            }
            let chunk = &mut chunks[index];
            let n = (CHUNK - offset).min(data.len() - written);
            let part = &data[written..written + n];
            // Over what the chunk already holds, then past its end.
            let overlap = (chunk.len() - offset).min(n);
            chunk[offset..offset + overlap].copy_from_slice(&part[..overlap]);
            chunk.extend_from_slice(&part[overlap..]);
            written += n;
            self.position += n as u64;
        }
        self.len = self.len.max(self.position);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for SnapshotBytes {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let read = this.read(buf.initialize_unfilled())?;
        buf.advance(read);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SnapshotBytes {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().write(data))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncSeek for SnapshotBytes {
    fn start_seek(self: Pin<&mut Self>, to: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => this.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => this.position.checked_add_signed(delta),
        };
        this.position = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a seek before a snapshot's start",
            )
        })?;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn parts_written_at_their_offsets_read_back_as_one_image() {
        let image = pattern(3 * CHUNK + 12_345);
        let mut received = SnapshotBytes::default();
        // Parts of an odd size, one of them sent twice (after a timeout, say).
        let part = 700_001;
        let mut offsets: Vec<usize> = (0..image.len()).step_by(part).collect();
        offsets.insert(2, offsets[1]);
        for offset in offsets {
            let end = (offset + part).min(image.len());
            received.seek(SeekFrom::Start(offset as u64)).await.unwrap();
            AsyncWriteExt::write_all(&mut received, &image[offset..end])
                .await
                .unwrap();
        }
        assert_eq!(received.len(), image.len() as u64);
        let mut back = Vec::new();
        AsyncReadExt::read_to_end(&mut received.reader(), &mut back)
            .await
            .unwrap();
        assert_eq!(back, image);
    }

    #[test]
    fn readers_share_the_chunks_and_a_gap_is_refused() {
        let mut bytes = SnapshotBytes::default();
        Write::write_all(&mut bytes, &pattern(CHUNK + 1)).unwrap();
        let (mut first, mut second) = (bytes.reader(), bytes.reader());
        assert!(Arc::ptr_eq(&first.chunks, &bytes.chunks));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        Read::read_to_end(&mut first, &mut a).unwrap();
        Read::read_to_end(&mut second, &mut b).unwrap();
        assert_eq!(a, b);
        bytes.position = bytes.len + 1;
        assert!(Write::write(&mut bytes, b"x").is_err());
    }
}
