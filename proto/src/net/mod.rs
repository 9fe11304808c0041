//! Remoting over TCP (feature `io`): framed reading and writing, a server loop, and a
//! multiplexing RPC client. Runs on `tokio` = madsim-tokio, so the simulator drives the
//! same code over its simulated network.
//!
//! # Layout
//! - [`CommandReader`], [`run_writer`]: buffered frames on any byte stream.
//! - [`server`]: accept loop; a connection's requests run concurrently inside its task
//!   (a long-polling pull parks without blocking the others), responses go back through
//!   one writer task.
//! - [`busy_poll`]: an opt-in spinner that keeps a one-worker runtime polling for I/O
//!   between frames instead of parking (one request in flight on a small VM).
//! - [`rpc`]: `RpcClient` (requests matched to responses by opaque, with timeouts) and
//!   `RpcPool` (one connection per address, reconnecting after failures).

pub mod busy_poll;
pub mod rpc;
pub mod server;

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::remoting::{check_frame, ProtoError, RemotingCommand};

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Proto(#[from] ProtoError),
}

/// Reads whole frames from a byte stream.
pub struct CommandReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> CommandReader<R> {
    pub fn new(inner: R) -> Self {
        CommandReader {
            inner,
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// The next command; `None` when the peer closed cleanly between frames.
    pub async fn read(&mut self) -> Result<Option<RemotingCommand>, ConnError> {
        loop {
            if let Some(size) = check_frame(&self.buf)? {
                let frame = self.buf.split_to(size);
                busy_poll::mark();
                return Ok(Some(RemotingCommand::decode_frame(frame.freeze())?));
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(
                    io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed mid-frame").into(),
                );
            }
        }
    }
}

/// Bytes a connection's writer gathers before it writes them out.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Bodies longer than this are written from where they are rather than copied into the
/// write buffer (an AppendEntries batch or a pull's messages: a copy per byte saved).
const BODY_COPY_BYTES_MAX: usize = 16 * 1024;

/// Writes the commands queued on `rx` to `out` until `rx` closes (Ok) or a write fails.
///
/// Commands are encoded straight into one buffer, and everything queued by the time the
/// writer runs goes out in one write. Before writing, the writer yields once, so that
/// tasks finishing at the same moment (responses of requests that were read together)
/// share the write: one `send` system call for many frames instead of one each. A large
/// body is not copied: what is buffered goes out, then the body itself.
pub async fn run_writer<W: AsyncWrite + Unpin>(
    mut rx: mpsc::Receiver<RemotingCommand>,
    mut out: W,
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(WRITE_BUFFER_BYTES);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut yielded = false;
        while buf.len() < WRITE_BUFFER_BYTES {
            let command = match next.take().map_or_else(|| rx.try_recv().ok(), Some) {
                Some(command) => command,
                None if yielded => break,
                None => {
                    tokio::task::yield_now().await;
                    yielded = true;
                    continue;
                }
            };
            if command.body.len() > BODY_COPY_BYTES_MAX {
                command.encode_head(&mut buf);
                write_both(&mut out, &buf, &command.body).await?;
                buf.clear();
            } else {
                command.encode(&mut buf);
            }
        }
        if !buf.is_empty() {
            out.write_all(&buf).await?;
            buf.clear();
        }
        // A no-op on a real socket; the simulator's socket sends on flush.
        out.flush().await?;
    }
    Ok(())
}

/// Writes `head` then `body`, in one `writev` where the stream takes both at once (so
/// the peer does not wake for a frame's head alone).
async fn write_both<W: AsyncWrite + Unpin>(
    out: &mut W,
    mut head: &[u8],
    mut body: &[u8],
) -> io::Result<()> {
    while !head.is_empty() {
        let n = out
            .write_vectored(&[io::IoSlice::new(head), io::IoSlice::new(body)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if n < head.len() {
            head = &head[n..];
        } else {
            body = &body[n - head.len()..];
            head = &[];
        }
    }
    out.write_all(body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that takes at most 7 bytes per write: every write is partial.
    #[derive(Default)]
    struct Trickle(Vec<u8>);

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let n = buf.len().min(7);
            self.0.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn writer_sends_large_bodies_in_place_and_keeps_frame_order() {
        let commands: Vec<RemotingCommand> = [10usize, BODY_COPY_BYTES_MAX + 1, 0, 200_000, 5]
            .into_iter()
            .enumerate()
            .map(|(i, body_bytes)| {
                let mut c = RemotingCommand::request(10 + i as i32).with_ext("n", i);
                c.opaque = i as i32;
                c.with_body(vec![i as u8; body_bytes])
            })
            .collect();
        let (tx, rx) = mpsc::channel(16);
        for c in &commands {
            tx.send(c.clone()).await.unwrap();
        }
        drop(tx);
        let mut out = Trickle::default();
        run_writer(rx, &mut out).await.unwrap();
        let mut rest = &out.0[..];
        for expected in &commands {
            let size = check_frame(rest).unwrap().expect("a whole frame");
            assert_eq!(&RemotingCommand::decode(&rest[..size]).unwrap(), expected);
            rest = &rest[size..];
        }
        assert!(rest.is_empty());
    }
}
