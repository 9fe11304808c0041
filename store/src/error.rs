//! The store's error type: one enum at the crate boundary, variants named by cause.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk failed. Under the durability contract the store stops accepting writes
    /// after this (see `MessageStore`), since it no longer knows what is durable.
    #[error("disk error in {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// Synced data is damaged: this is never repaired silently.
    #[error("corrupt data in {file} at offset {offset}: {reason}")]
    Corrupt {
        file: String,
        offset: u64,
        reason: String,
    },
    /// A file in the data directory that the store does not recognise.
    #[error("unexpected file {file} in the data directory: {reason}")]
    UnexpectedFile { file: String, reason: String },
    /// The message is refused as normal business (RocketMQ: MESSAGE_ILLEGAL).
    #[error("message illegal: {0}")]
    MessageIllegal(String),
    /// A sync-flush write was not made durable within the timeout (RocketMQ:
    /// FLUSH_DISK_TIMEOUT). It may still become durable: the outcome is unknown.
    #[error("flush did not complete within {timeout_ms} ms")]
    FlushTimeout { timeout_ms: u64 },
    /// The store stopped accepting writes after a disk failure or shutdown.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("invalid store config: {0}")]
    Config(String),
    #[error("metadata store: {0}")]
    Meta(String),
}

impl StoreError {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Adds context to `io::Result`s.
pub trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            context: context(),
            source,
        })
    }
}
