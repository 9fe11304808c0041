//! Remoting over TCP (feature `io`): framed reading and writing, a server loop, and a
//! multiplexing RPC client. Runs on `tokio` = madsim-tokio, so the simulator drives the
//! same code over its simulated network.
//!
//! # Layout
//! - [`CommandReader`], [`run_writer`]: buffered frames on any byte stream.
//! - [`server`]: accept loop; a connection's requests run concurrently inside its task
//!   (a long-polling pull parks without blocking the others), responses go back through
//!   one writer task.
//! - [`rpc`]: `RpcClient` (requests matched to responses by opaque, with timeouts) and
//!   `RpcPool` (one connection per address, reconnecting after failures).

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

/// Writes the commands queued on `rx` to `out` until `rx` closes (Ok) or a write fails.
///
/// Commands are encoded straight into one buffer, and everything queued by the time the
/// writer runs goes out in one write. Before writing, the writer yields once, so that
/// tasks finishing at the same moment (responses of requests that were read together)
/// share the write: one `send` system call for many frames instead of one each.
pub async fn run_writer<W: AsyncWrite + Unpin>(
    mut rx: mpsc::Receiver<RemotingCommand>,
    mut out: W,
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(WRITE_BUFFER_BYTES);
    let drain = |rx: &mut mpsc::Receiver<RemotingCommand>, buf: &mut BytesMut| {
        while buf.len() < WRITE_BUFFER_BYTES {
            let Ok(command) = rx.try_recv() else { break };
            command.encode(buf);
        }
    };
    while let Some(command) = rx.recv().await {
        command.encode(&mut buf);
        drain(&mut rx, &mut buf);
        if buf.len() < WRITE_BUFFER_BYTES {
            tokio::task::yield_now().await;
            drain(&mut rx, &mut buf);
        }
        out.write_all(&buf).await?;
        // A no-op on a real socket; the simulator's socket sends on flush.
        out.flush().await?;
        buf.clear();
    }
    Ok(())
}
