//! Remoting over TCP (feature `io`): framed reading and writing, a server loop, and a
//! multiplexing RPC client. Runs on `tokio` = madsim-tokio, so the simulator drives the
//! same code over its simulated network.
//!
//! # Layout
//! - [`CommandReader`], [`write_command`]: buffered frames on any byte stream.
//! - [`server`]: accept loop; each request runs in its own task (a long-polling pull
//!   parks without blocking the connection), responses go back through one writer task.
//! - [`rpc`]: `RpcClient` (requests matched to responses by opaque, with timeouts) and
//!   `RpcPool` (one connection per address, reconnecting after failures).

pub mod rpc;
pub mod server;

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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

/// Writes one command as a frame.
pub async fn write_command<W: AsyncWrite + Unpin>(
    writer: &mut W,
    command: &RemotingCommand,
) -> io::Result<()> {
    writer.write_all(&command.to_frame()).await
}
